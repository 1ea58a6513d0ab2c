"""The progress sinks: what a line says, and how often a pipe gets one (injected clock)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from opsctl.display import LineSink, describe
from opsctl.operations.progress import Progress, Snapshot
from tests.conftest import FakeClock


def test_a_line_says_step_amount_rate_eta_and_status():
    snap = Snapshot(title="t", phase="backfill", step=2, steps=4, done=400, total=1000, unit="rows", rate=10.0,
                    eta_seconds=60, status="batch ok")  # fmt: skip
    assert describe(snap) == "[2/4] backfill 400/1000 rows (40%, 10/s, ETA 1m) — batch ok"
    assert describe(Snapshot(title="t", phase="evil\x1b[2J")) == "evil\\x1b[2J"


def test_a_pipe_gets_a_line_per_phase_and_at_most_one_per_interval():
    clock = FakeClock(datetime(2026, 11, 27, 3, 0, tzinfo=UTC))
    out = io.StringIO()
    progress = Progress(LineSink(Console(file=out, width=200), clock, every=10), clock, title="t")
    progress.phase("copy", total=100)
    for _ in range(5):
        clock.advance(seconds=3)
        progress.update(advance=10)
    progress.phase("verify")
    lines = out.getvalue().splitlines()
    assert lines == ["copy 0/100 (0%)", "copy 40/100 (40%, 3.3/s, ETA 18s)", "verify"]
