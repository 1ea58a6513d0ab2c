"""What the operation runner costs per step, against a baseline measured in the same run.

    .venv/bin/python bench/runner.py [--steps 200] [--repeat 3] [--postgres URL]

A step's bookkeeping is: renew the lease and the heartbeat at the boundary, write the run
record and a timeline event when it starts and when it is done.  The baseline is the least a
step record needs: one timeline event written per step.  Reported: milliseconds per step for
both, and their ratio, on SQLite (and PostgreSQL with --postgres).  The point: a step is a
unit of change worth recording (a traffic shift, a migration file), not a loop iteration — a
backfill reports its batches through ``run.progress``/``run.save`` inside one step.
Writes bench/results/runner.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def measure(config: Path, state: Path, steps: int) -> tuple[float, float]:
    from opsctl.context import Context
    from opsctl.operations.model import Operation, Step
    from opsctl.operations.runner import execute
    from opsctl.output import Output
    from opsctl.state.base import Event

    ctx = Context(
        config_path=str(config), output=Output("json", stdout=io.StringIO(), stderr=io.StringIO()), state_dir=state
    )
    store = ctx.store
    started = time.perf_counter()
    for i in range(steps):
        store.add_event(Event("bench", "baseline", datetime.now(UTC), "bench", "step_done", {"index": i}))
    baseline = (time.perf_counter() - started) / steps

    plan = [Step(f"s{i}", "nothing", apply=lambda run: None) for i in range(steps)]
    started = time.perf_counter()
    execute(ctx, Operation("bench op", ctx.service("api"), {}, lock="bench"), lambda run: plan)
    runner = (time.perf_counter() - started) / steps
    ctx.close()
    return baseline * 1000, runner * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL for the shared-store row")
    args = parser.parse_args()
    example = (HERE.parent / "config" / "opsctl.example.yaml").read_text()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"sqlite": example}
        if args.postgres:
            backends["postgres"] = example.replace("state:\n", f"state:\n  url: {args.postgres}\n", 1)
        for name, text in backends.items():
            config = Path(tmp) / f"{name}.yaml"
            config.write_text(text)
            samples = [measure(config, Path(tmp) / f"state-{name}-{i}", args.steps) for i in range(args.repeat)]
            base = statistics.median(s[0] for s in samples)
            run = statistics.median(s[1] for s in samples)
            rows.append({"store": name, "baseline_ms_per_step": round(base, 3), "runner_ms_per_step": round(run, 3),
                         "ratio": round(run / base, 2)})  # fmt: skip
    for row in rows:
        print(f"{row['store']:8} baseline {row['baseline_ms_per_step']:7.3f} ms/step   runner "
              f"{row['runner_ms_per_step']:7.3f} ms/step   ratio {row['ratio']:.2f}x")  # fmt: skip
    out = HERE / "results" / "runner.json"
    out.write_text(json.dumps({
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {__import__('os').cpu_count()} cpus, Python {platform.python_version()}",
        "steps": args.steps, "repeat": args.repeat, "results": rows,
    }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
