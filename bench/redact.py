"""Time of :func:`opsctl.redact.redact` on adversarial text against baselines measured in the same run.

    .venv/bin/python bench/redact.py [--sizes 10000,100000,1000000] [--runs 5] [--json PATH]

For each size and each hostile shape (long runs of URL-ish characters, repeated
``a://``, ``x:``, ``@``, ``password=``, …) it reports the median time of ``redact``
and its ratio to two baselines on the same text size: ``str.replace`` of one
registered value over the text, and ``redact`` of benign prose.  Linear redaction
keeps the ratios flat as the size grows tenfold; a quadratic one multiplies them
by ten at each step (the old URL pattern took 56 s on 100 KB).  Runs are
interleaved so that machine noise hits every shape alike.  No pass/fail: the
numbers are for people (the tests only guard against hangs).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from opsctl import redact as redaction

SECRET = "s3cr3t-Value/with spaces+@"
PROSE = "incident INC-1234 on billing: p95 latency above 200ms since 12:03, rollback of v2.3 in progress. "

SHAPES: dict[str, Callable[[int], str]] = {
    "aaaa…": lambda n: "a" * n,
    "a://a://…": lambda n: ("a://" * (n // 4 + 1))[:n],
    "a://u:p@a://…": lambda n: ("a://u:p@" * (n // 8 + 1))[:n],
    "x:x:…": lambda n: ("x:" * (n // 2 + 1))[:n],
    "a://" + "a:a…": lambda n: "a://" + ("a:" * (n // 2))[: n - 4],
    "@@@…": lambda n: "@" * n,
    "password=…": lambda n: ("password=" * (n // 9 + 1))[:n],
    "tokentoken…=": lambda n: ("token" * (n // 5))[: n - 1] + "=",
    "a=a=…": lambda n: ("a=" * (n // 2 + 1))[:n],
    "'quoted…": lambda n: "password='" + ("\\'" * (n // 2))[: n - 10],
    '"quoted…': lambda n: 'password="' + ('\\"' * (n // 2))[: n - 10],
    'password="…': lambda n: ('password="' * (n // 10 + 1))[:n],
    "secret prefix…": lambda n: (SECRET[:-1] * (n // len(SECRET) + 1))[:n],
}


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    redaction.forget_all()
    redaction.register(SECRET)
    results: list[dict[str, object]] = []
    print(f"{'size':>9}  {'shape':<16} {'redact s':>10} {'x replace':>10} {'x benign':>9}")
    for size in sizes:
        benign = (PROSE * (size // len(PROSE) + 1))[:size]
        replace_time = median_time(lambda b=benign: b.replace(SECRET, redaction.MASK), args.runs)
        benign_time = median_time(lambda b=benign: redaction.redact(b), args.runs)
        for name, make in SHAPES.items():
            text = make(size)
            seconds = median_time(lambda t=text: redaction.redact(t), args.runs)
            row = {
                "size": size,
                "shape": name,
                "seconds": seconds,
                "ratio_to_replace": seconds / max(replace_time, 1e-9),
                "ratio_to_benign": seconds / max(benign_time, 1e-9),
            }
            results.append(row)
            print(
                f"{size:>9}  {name:<16} {seconds:>10.5f} {row['ratio_to_replace']:>10.1f} {row['ratio_to_benign']:>9.1f}"
            )
    if args.json:
        meta = {"python": platform.python_version(), "machine": platform.machine(), "runs": args.runs}
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
