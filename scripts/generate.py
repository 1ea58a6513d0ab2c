"""Regenerate the files derived from the code: config/schema.json and completions/.

    .venv/bin/python scripts/generate.py          # write them
    .venv/bin/python scripts/generate.py --check  # exit 1 if any is stale

tests/unit/test_generated.py runs the check as part of the suite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELLS = ("bash", "zsh", "fish")


def schema_text() -> str:
    from opsctl.settings import json_schema

    schema = json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "opsctl configuration (opsctl.yaml)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def outputs() -> dict[Path, str]:
    from opsctl.completion import script

    files = {ROOT / "config" / "schema.json": schema_text()}
    for shell in SHELLS:
        files[ROOT / "completions" / f"opsctl.{shell}"] = script(shell)
    return files


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if check and stale:
        print("stale: " + ", ".join(map(str, stale)) + " — run: .venv/bin/python scripts/generate.py", file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
