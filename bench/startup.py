"""Start-up time of opsctl against a minimal typer app, measured in the same run.

    .venv/bin/python bench/startup.py [--runs 30]

Runs each command ``--runs`` times, interleaved so machine noise hits all of
them alike, and reports medians and the ratio to the baseline (the minimal app's
``--help``).  The goal: ``opsctl --help`` and ``opsctl services`` within 1.3x.
Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
OPSCTL = str(Path(PY).with_name("opsctl"))


def commands() -> dict[str, list[str]]:
    example = str(HERE.parent / "config" / "opsctl.example.yaml")
    return {
        "baseline: minimal typer app --help": [PY, str(HERE / "minimal_app.py"), "--help"],
        "baseline: minimal typer app hello": [PY, str(HERE / "minimal_app.py"), "hello"],
        "opsctl --help": [OPSCTL, "--help"],
        "opsctl services": [OPSCTL, "--config", example, "services"],
        "opsctl -o json services": [OPSCTL, "--config", example, "-o", "json", "services"],
    }


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")}
    env["OPSCTL_STATE_DIR"] = str(HERE / "results" / ".state")
    cmds = commands()
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    for argv in cmds.values():  # warm the page cache and .pyc files
        timed(argv, env)
    for _ in range(args.runs):
        for name, argv in cmds.items():
            samples[name].append(timed(argv, env))
    base_help = statistics.median(samples["baseline: minimal typer app --help"])
    base_cmd = statistics.median(samples["baseline: minimal typer app hello"])
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        baseline = base_help if "help" in name else base_cmd
        rows.append({"command": name, "median_ms": round(median * 1000, 1), "ratio": round(median / baseline, 2)})
    width = max(len(r["command"]) for r in rows)
    print(f"{'command':<{width}}  median ms  ratio to baseline")
    for row in rows:
        print(f"{row['command']:<{width}}  {row['median_ms']:>9}  {row['ratio']:>5}x")
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        "runs": args.runs,
        "baseline": "--help rows against the minimal app's --help; command rows against its 'hello' command",
        "results": rows,
    }
    (HERE / "results" / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
