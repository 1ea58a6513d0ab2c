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
        "baseline: minimal typer app hello" + TERMINAL: [PY, str(HERE / "minimal_app.py"), "hello"],
        "opsctl services" + TERMINAL: [OPSCTL, "--config", example, "services"],
    }


TERMINAL = " (on a terminal)"


def timed(argv: list[str], env: dict[str, str], terminal: bool = False) -> float:
    """Wall time of one run; with ``terminal`` stdout is a pseudo-terminal (rich tables are drawn)."""
    if not terminal:
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
        return time.perf_counter() - start
    import pty

    master, slave = pty.openpty()
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.DEVNULL, env=env)
        os.close(slave)
        while True:  # drain the terminal so the child never blocks on a full buffer
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
        proc.wait()
        elapsed = time.perf_counter() - start
    finally:
        os.close(master)
    if proc.returncode:
        raise SystemExit(f"{argv} failed with {proc.returncode}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")}
    env["OPSCTL_STATE_DIR"] = str(HERE / "results" / ".state")
    cmds = commands()
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    for name, argv in cmds.items():  # warm the page cache and .pyc files
        timed(argv, env, name.endswith(TERMINAL))
    for _ in range(args.runs):
        for name, argv in cmds.items():
            samples[name].append(timed(argv, env, name.endswith(TERMINAL)))
    base_help = statistics.median(samples["baseline: minimal typer app --help"])
    base_cmd = statistics.median(samples["baseline: minimal typer app hello"])
    base_tty = statistics.median(samples["baseline: minimal typer app hello" + TERMINAL])
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        baseline = base_tty if name.endswith(TERMINAL) else base_help if "help" in name else base_cmd
        rows.append({"command": name, "median_ms": round(median * 1000, 1), "ratio": round(median / baseline, 2)})
    width = max(len(r["command"]) for r in rows)
    print(f"{'command':<{width}}  median ms  ratio to baseline")
    for row in rows:
        print(f"{row['command']:<{width}}  {row['median_ms']:>9}  {row['ratio']:>5}x")
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        "runs": args.runs,
        "baseline": "--help rows against the minimal app's --help; command rows against its 'hello' command"
        " (stdout a pipe, or a pseudo-terminal for the rows marked so)",
        "results": rows,
    }
    (HERE / "results" / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
