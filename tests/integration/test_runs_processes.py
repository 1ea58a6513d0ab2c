"""Signals, SIGKILL and takeover across real processes, on SQLite and PostgreSQL state.

The child is opsctl's own CLI running a multi-step test operation (tests/fakes/slow_op.py):
each step creates a file and its compensation deletes it.  Waiting here is polling with
generous bounds (hang guards), never a timing assertion.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import OPSCTL

SLOW_OP = Path(__file__).resolve().parents[1] / "fakes" / "slow_op.py"
REPO = Path(__file__).resolve().parents[2]


def _reset_signals() -> None:  # a child started from a background shell inherits SIGINT ignored
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@dataclass
class Child:
    proc: subprocess.Popen[str]
    lines: list[str]

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        """Read stderr until a line contains ``text`` (a hang guard, not a timing check)."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if text in line:
                return
        pytest.fail(f"never saw {text!r}; stderr so far:\n{''.join(self.lines)}")

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, "".join(self.lines) + err


@dataclass
class Setup:
    config: Path
    world: Path
    env: dict[str, str]

    def start(self, *args: str) -> Child:
        proc = subprocess.Popen(
            [sys.executable, str(SLOW_OP), "-c", str(self.config), "-o", "json", "test-op", "api", str(self.world), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env, preexec_fn=_reset_signals,
        )  # fmt: skip
        return Child(proc, [])

    def opsctl(self, *args: str) -> tuple[int, Any, str]:
        proc = subprocess.run(
            [str(OPSCTL), "-c", str(self.config), "-o", "json", *args],
            capture_output=True, text=True, env=self.env, timeout=60,
        )  # fmt: skip
        data = json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.returncode, data, proc.stderr

    def files(self) -> list[str]:
        return sorted(p.name for p in self.world.iterdir())

    def runs(self, *args: str) -> list[dict[str, Any]]:
        code, data, err = self.opsctl("runs", *args)
        assert code == 0, err
        return list(data)

    def audit(self) -> list[dict[str, Any]]:
        code, data, err = self.opsctl("audit", "--service", "api")
        assert code == 0, err
        return [a for a in data if a["command"] == "test op"]


@pytest.fixture
def setup(state_config: Path, tmp_path: Path) -> Iterator[Setup]:
    config = tmp_path / "short-lease.yaml"
    config.write_text(state_config.read_text().replace("lock_ttl: 60s", "lock_ttl: 2s"))
    world = tmp_path / "world"
    world.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    yield Setup(config, world, env)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_at_a_safe_point_compensates_audits_and_exits_130(setup: Setup, sig: signal.Signals) -> None:
    child = setup.start("--steps", "4", "--pause", "0", "--slow-at", "1")
    child.wait_for("applied 1")
    child.proc.send_signal(sig)
    code, _out, err = child.finish()
    assert code == 130, err
    assert setup.files() == []  # both completed steps undone
    assert f"{sig.name} received" in err and "interrupted by" in err and "Traceback" not in err
    assert "undone 1" in err and "undone 0" in err and "applied 2" not in err
    [run] = setup.runs("--all")
    assert run["state"] == "interrupted" and "still applied" not in run["message"] and sig.name in run["message"]
    outcomes = [a["outcome"] for a in setup.audit()]
    assert outcomes == ["started", "interrupted"]
    assert setup.opsctl("locks")[1] == []  # no lock left held


def test_a_failed_step_is_rolled_back_and_exits_1(setup: Setup) -> None:
    child = setup.start("--steps", "3", "--pause", "0", "--fail-at", "2")
    code, _out, err = child.finish()
    assert code == 1, err
    assert setup.files() == [] and "step 2 broke on purpose" in err
    assert [a["outcome"] for a in setup.audit()] == ["started", "rolled_back"]


def test_sigkill_leaves_an_orphan_that_one_of_two_processes_takes_over(setup: Setup) -> None:
    child = setup.start("--steps", "4", "--pause", "0", "--slow-at", "1")
    child.wait_for("applied 1")
    child.proc.kill()
    child.proc.wait(timeout=10)

    # The started record and the run record are there: never nothing.
    assert [a["outcome"] for a in setup.audit()] == ["started"]
    deadline = time.monotonic() + 30
    while True:
        [run] = setup.runs()
        if run["state"] == "orphaned":
            break
        assert run["state"] == "running" and time.monotonic() < deadline, run
        time.sleep(0.3)
    assert run["step"] == "step 1" and run["driver"]["pid"] == child.proc.pid
    assert {"id", "kind", "service", "env", "state", "step", "driver", "started_at", "heartbeat_at"} <= set(run)
    code, shown, _ = setup.opsctl("runs", "show", run["id"])
    assert code == 0 and [e["event"] for e in shown["timeline"]][:3] == ["step_started", "step_done", "step_started"]

    # Two engineers take it over at the same moment: exactly one wins and resumes it.
    first = setup.start("--resume", run["id"], "--pause", "0")
    second = setup.start("--resume", run["id"], "--pause", "0")
    results = [first.finish(), second.finish()]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], results
    winner_out = next(out for code, out, _ in results if code == 0)
    assert json.loads(winner_out)["state"] == "succeeded"
    loser_err = next(err for code, _, err in results if code == 3)
    # the loser met the winner's lock, or the run already taken over, or already finished by it
    assert any(s in loser_err for s in ("locked by", "taken over by someone else", "still driven by", "already ended"))
    assert setup.files() == ["step0", "step1", "step2", "step3"]
    [done] = setup.runs("--all")
    assert done["state"] == "succeeded" and done["driver"]["pid"] != child.proc.pid
    takeovers = [a for a in setup.audit() if a["outcome"] == "takeover"]
    assert len(takeovers) == 1 and f"pid {child.proc.pid}" in takeovers[0]["message"]


def test_an_orphan_can_be_rolled_back_by_another_process(setup: Setup) -> None:
    child = setup.start("--steps", "3", "--pause", "0", "--slow-at", "1")
    child.wait_for("applied 1")
    child.proc.kill()
    child.proc.wait(timeout=10)
    [run] = setup.runs()
    deadline = time.monotonic() + 30
    while True:
        taker = setup.start("--resume", run["id"], "--rollback", "--pause", "0")
        code, out, err = taker.finish()
        if code == 0:
            break
        assert code == 3 and time.monotonic() < deadline, err  # not orphaned yet: refused, nothing done
        time.sleep(0.5)
    assert json.loads(out)["state"] == "rolled_back" and setup.files() == []


def test_a_frozen_driver_learns_it_lost_the_lease_and_changes_nothing_more(setup: Setup) -> None:
    child = setup.start("--steps", "4", "--pause", "1")
    child.wait_for("applied 0")
    child.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(3)  # longer than the 2 s lease: it expires while the process is frozen
        assert setup.opsctl("locks")[1] == []  # the lock is free for others now
    finally:
        child.proc.send_signal(signal.SIGCONT)
    code, _out, err = child.finish()
    assert code == 3, err
    assert "made no further change" in err and "Traceback" not in err
    assert "applied 1" not in err and setup.files() == ["step0"]
    [run] = setup.runs("--all")
    assert run["state"] == "interrupted" and "lost" in run["message"]
