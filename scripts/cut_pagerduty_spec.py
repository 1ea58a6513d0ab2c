"""Cut the operations opsctl needs out of PagerDuty's official REST API v2 OpenAPI document.

The full document (PagerDuty/api-schema, ``reference/REST/openapiv3.json``, 2.7 MB) is not kept in
this repository; the contract tests load the cut committed under ``tests/contract/pagerduty/``.
The cut keeps the document's top level (``openapi``, ``info``, ``servers``, ``security``, ``x-*``), the path
items of :data:`OPERATIONS` with only those methods, every component they reference, followed
transitively through ``$ref``, the security schemes the document requires, and the tags the kept
operations carry. Nothing is rewritten: kept objects are copied as they are. The output is
deterministic (same input, same bytes): upstream order, two-space indentation, a final newline.

    .venv/bin/python scripts/cut_pagerduty_spec.py --source PATH/TO/openapiv3.json \\
        --out tests/contract/pagerduty/rest-openapiv3.cut.json

It prints the sha256 of the source and of the cut, for ``tests/contract/pagerduty/SOURCE.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# What opsctl's PagerDuty adapter calls (src/opsctl/integrations/pagerduty.py) ...
ADAPTER_OPERATIONS = (
    ("GET", "/priorities"),
    ("POST", "/incidents"),
    ("GET", "/incidents"),
    ("PUT", "/incidents/{id}"),
    ("POST", "/incidents/{id}/notes"),
    ("POST", "/incidents/{id}/status_updates"),
)
# ... and what the PagerDuty fake (tests/fakes/pagerduty.py) serves besides, checked by the same contract.
FAKE_OPERATIONS = (
    ("GET", "/incidents/{id}"),
    ("GET", "/incidents/{id}/notes"),
)
OPERATIONS = ADAPTER_OPERATIONS + FAKE_OPERATIONS
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
TOP_LEVEL = ("openapi", "info", "servers", "security", "externalDocs")


class CutError(Exception):
    """The source lacks something the cut needs."""


def _refs(node: Any) -> Iterator[str]:
    """Every local ``$ref`` under ``node``."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _component(ref: str) -> tuple[str, str]:
    """The component a ``$ref`` points into: ``#/components/responses/Conflict/content/...`` ->
    ("responses", "Conflict"); the whole component is kept."""
    parts = ref.split("/")
    if len(parts) < 4 or parts[:2] != ["#", "components"]:
        raise CutError(f"unsupported $ref {ref!r}: only #/components/<kind>/<name>[/...] is followed")
    return parts[2], parts[3].replace("~1", "/").replace("~0", "~")


def cut(spec: dict[str, Any], operations: Iterable[tuple[str, str]] = OPERATIONS) -> dict[str, Any]:
    """The part of ``spec`` that ``operations`` (METHOD, path template) need."""
    wanted: dict[str, set[str]] = {}
    for method, template in operations:
        wanted.setdefault(template, set()).add(method.lower())
    paths: dict[str, Any] = {}
    for template, item in spec.get("paths", {}).items():
        if template not in wanted:
            continue
        missing = wanted[template] - set(item)
        if missing:
            raise CutError(f"{template}: no {', '.join(sorted(m.upper() for m in missing))} operation in the source")
        paths[template] = {k: v for k, v in item.items() if k not in HTTP_METHODS or k in wanted[template]}
    absent = sorted(set(wanted) - set(paths))
    if absent:
        raise CutError(f"no such path in the source: {', '.join(absent)}")

    components = spec.get("components", {})
    keep: set[tuple[str, str]] = set()
    pending = list(_refs(paths))
    while pending:
        kind, name = _component(pending.pop())
        if (kind, name) in keep:
            continue
        try:
            target = components[kind][name]
        except KeyError:
            raise CutError(f"$ref to #/components/{kind}/{name}, which the source does not have") from None
        keep.add((kind, name))
        pending.extend(_refs(target))
    for requirement in spec.get("security", []):
        keep.update(("securitySchemes", name) for name in requirement)
    for item in paths.values():
        for method in (k for k in item if k in HTTP_METHODS):
            for requirement in item[method].get("security", []):
                keep.update(("securitySchemes", name) for name in requirement)

    used_tags = {
        tag for item in paths.values() for k, op in item.items() if k in HTTP_METHODS for tag in op.get("tags", [])
    }
    out: dict[str, Any] = {}
    for key, value in spec.items():  # the source's order
        if key == "paths":
            out[key] = paths
        elif key == "components":
            out[key] = {
                kind: {name: entry for name, entry in entries.items() if (kind, name) in keep}
                for kind, entries in components.items()
                if any((kind, name) in keep for name in entries)
            }
        elif key == "tags":
            out[key] = [tag for tag in value if tag.get("name") in used_tags]
        elif key in TOP_LEVEL or key.startswith("x-"):
            out[key] = value
    return out


def dumps(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", required=True, type=Path, help="the full upstream openapiv3.json")
    parser.add_argument("--out", type=Path, help="where to write the cut (default: standard output)")
    args = parser.parse_args(argv)
    raw = args.source.read_bytes()
    try:
        document = cut(json.loads(raw))
    except (CutError, ValueError) as exc:
        print(f"cut_pagerduty_spec: {exc}", file=sys.stderr)
        return 1
    data = dumps(document)
    if args.out is None:
        sys.stdout.buffer.write(data)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(data)
    print(f"source sha256 {hashlib.sha256(raw).hexdigest()}", file=sys.stderr)
    print(f"cut    sha256 {hashlib.sha256(data).hexdigest()} ({len(data)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
