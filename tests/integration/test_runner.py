"""The operation runner in-process, on SQLite and PostgreSQL state: steps, compensation, dry runs,
lease loss, takeover, signals at safe points, the short operations' lock wait, and progress.

The clock and the sleep are injected (``FakeClock``): nothing here waits for real time.
"""

from __future__ import annotations

import io
import os
import signal
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsctl.context import Context
from opsctl.errors import ExitCode, FailedError, RefusedError, UpstreamError
from opsctl.operations import views
from opsctl.operations.model import Operation, RunError, Step
from opsctl.operations.runner import execute
from opsctl.output import Output
from opsctl.state.base import RunRecord
from opsctl.state.lease import Lease
from opsctl.state.locks import LockHeldError
from tests.conftest import FakeClock

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


@dataclass
class World:
    """Where the steps make their (real, on-disk) changes, and what happened in which order."""

    config: Path
    state: Path
    clock: FakeClock
    log: list[str] = field(default_factory=list)

    def ctx(self, **kw: Any) -> Context:
        out = Output("json", stdout=io.StringIO(), stderr=io.StringIO())
        return Context(
            config_path=str(self.config), clock=self.clock, sleep=self.clock.sleep, output=out,
            state_dir=self.state, **kw,
        )  # fmt: skip

    def steps(
        self, n: int, *, fail_at: int | None = None, undo_fails: int | None = None, no_undo: set[int] = frozenset()
    ) -> list[Step]:  # type: ignore[assignment]
        def make(i: int) -> Step:
            def apply(run: Any) -> int:
                self.log.append(f"apply {i}")
                if i == fail_at:
                    raise FailedError(f"step {i} broke")
                return i * 10

            def undo(run: Any) -> None:
                self.log.append(f"undo {i}")
                if i == undo_fails:
                    raise UpstreamError(f"undo {i} could not reach the API")

            return Step(f"s{i}", f"change {i}", target="world", apply=apply, compensate=None if i in no_undo else undo)

        return [make(i) for i in range(n)]


@pytest.fixture
def world(state_config: Path, tmp_path: Path) -> World:
    return World(state_config, tmp_path / "state", FakeClock(T0))


@pytest.fixture
def live_signals() -> Any:
    """Signals as a terminal session has them (a CI job started in the background may have
    inherited SIGINT ignored, which opsctl rightly leaves ignored)."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def op(ctx: Context, *, short: bool = False, **kw: Any) -> Operation:
    return Operation("test op", ctx.service("api"), {"image": "api:2"}, lock="test", short=short, **kw)


def audit_of(ctx: Context) -> list[tuple[str, str | None]]:
    return [(a.outcome, a.run_id) for a in ctx.store.list_audit(service="api")]


def test_success_records_run_timeline_and_audit(world: World) -> None:
    ctx = world.ctx()
    result = execute(ctx, op(ctx), lambda run: world.steps(3))
    assert result.state == "succeeded" and result.results == {"s0": 0, "s1": 10, "s2": 20}
    assert world.log == ["apply 0", "apply 1", "apply 2"]
    shown = views.show(ctx, result.run_id or "")
    assert shown["state"] == "succeeded" and shown["step"] == "s2" and shown["steps"] == 3
    assert shown["driver"]["pid"] == os.getpid() and shown["params"] == {"image": "api:2"}
    events = [e["event"] for e in shown["timeline"]]
    assert events == ["step_started", "step_done"] * 3 + ["finished"]
    assert audit_of(ctx) == [("started", result.run_id), ("ok", result.run_id)]
    assert ctx.locks.holder("test/api@production", world.clock()) is None


def test_failure_compensates_in_reverse_including_the_failed_step(world: World) -> None:
    ctx = world.ctx()
    with pytest.raises(RunError) as caught:
        execute(ctx, op(ctx), lambda run: world.steps(4, fail_at=2))
    assert caught.value.exit_code == ExitCode.FAILED
    assert world.log == ["apply 0", "apply 1", "apply 2", "undo 2", "undo 1", "undo 0"]
    result = caught.value.result
    assert result.state == "rolled_back" and "step 2 broke" in caught.value.message
    assert views.show(ctx, result.run_id or "")["state"] == "rolled_back"
    assert [o for o, _ in audit_of(ctx)] == ["started", "rolled_back"]


def test_nothing_to_undo_keeps_the_steps_own_error(world: World) -> None:
    ctx = world.ctx()
    steps = world.steps(2, fail_at=1, no_undo={0, 1})
    steps[1].apply = lambda run: (_ for _ in ()).throw(UpstreamError("PagerDuty unreachable"))
    with pytest.raises(UpstreamError, match="PagerDuty unreachable") as caught:
        execute(ctx, op(ctx), lambda run: steps)
    assert caught.value.exit_code == ExitCode.UPSTREAM
    [run] = ctx.store.list_runs()
    assert run.state == "failed" and "still applied: 's0', 's1'" in run.message
    assert [o for o, _ in audit_of(ctx)] == ["started", "upstream"]


def test_a_failed_compensation_says_what_is_left_and_how_to_resume(world: World) -> None:
    ctx = world.ctx()
    operation = op(ctx, resume_hint="roll it back with 'opsctl test rollback api'")
    with pytest.raises(RunError) as caught:
        execute(ctx, operation, lambda run: world.steps(3, fail_at=2, undo_fails=1))
    assert world.log == ["apply 0", "apply 1", "apply 2", "undo 2", "undo 1"]  # stops at the failed undo
    error = caught.value
    assert error.exit_code == ExitCode.FAILED and error.result.state == "failed"
    assert "undoing 's1' failed" in error.message and "still applied: 's0', 's1'" in error.message
    assert error.hint is not None and "opsctl test rollback api" in error.hint and "runs show" in error.hint


def test_dry_run_prints_the_same_steps_and_changes_nothing(world: World) -> None:
    ctx = world.ctx(dry_run=True)
    result = execute(ctx, op(ctx), lambda run: world.steps(2))
    assert result.dry_run and result.state == "planned" and result.run_id is None
    assert [s["name"] for s in result.plan] == ["s0", "s1"] and result.plan[0]["undo"] == "revert"
    assert world.log == [] and ctx.store.list_runs() == []
    [entry] = ctx.store.list_audit()
    assert entry.dry_run and entry.outcome == "ok"


def test_refusal_while_planning_is_audited_and_leaves_no_run(world: World) -> None:
    ctx = world.ctx()

    def plan(run: Any) -> list[Step]:
        raise RefusedError("already resolved")

    with pytest.raises(RefusedError):
        execute(ctx, op(ctx), plan)
    assert ctx.store.list_runs() == [] and audit_of(ctx) == [("refused", None)]


def test_a_lost_lease_stops_before_the_next_change(world: World) -> None:
    ctx = world.ctx()
    steps = world.steps(3)

    def break_it(run: Any) -> int:
        world.log.append("apply 1")
        assert ctx.store.break_lock("test/api@production") is not None  # 'opsctl unlock --force' elsewhere
        return 1

    steps[1].apply = break_it
    with pytest.raises(RunError) as caught:
        execute(ctx, op(ctx), lambda run: steps)
    assert world.log == ["apply 0", "apply 1"]  # nothing after the loss, and nothing undone
    assert caught.value.exit_code == ExitCode.REFUSED and "made no further change" in caught.value.message
    assert caught.value.result.state == "interrupted"
    assert [o for o, _ in audit_of(ctx)] == ["started", "interrupted"]


def test_takeover_resumes_an_orphaned_run_from_where_it_stopped(world: World) -> None:
    ctx = world.ctx()
    steps = world.steps(4)
    real = steps[2].apply

    class Crash(BaseException):
        pass

    def die(run: Any) -> Any:
        assert real is not None
        real(run)
        raise Crash  # the driver dies mid-step

    steps[2].apply = die
    with pytest.raises(Crash):
        execute(ctx, op(ctx), lambda run: steps)
    [dead] = ctx.store.list_runs()
    # A SIGKILL leaves the record running (the process tests show that for real); here the
    # in-process "crash" was recorded as failed, so put it back the way a kill leaves it.
    ctx.store.update_run(RunRecord(**{**dead.__dict__, "state": "running", "finished_at": None}))
    assert views.show(ctx, dead.id)["state"] == "running"
    world.clock.advance(seconds=61)  # one lease later, nobody renewed it
    assert views.show(ctx, dead.id)["state"] == "orphaned"
    assert [r["id"] for r in views.list_runs(ctx, service=None, env=None, include_finished=False, limit=10)] == [
        dead.id
    ]

    world.log.clear()
    result = execute(world.ctx(), op(ctx), lambda run: world.steps(4), takeover=dead.id.lower())
    assert result.state == "succeeded" and world.log == ["apply 2", "apply 3"]  # the step in progress, again
    [takeover] = [a for a in ctx.store.list_audit(service="api") if a.outcome == "takeover"]
    assert takeover.run_id == dead.id and "took over run" in takeover.message
    assert f"from {dead.driver_user}@{dead.driver_host} (pid {dead.driver_pid})" in takeover.message
    with pytest.raises(RefusedError, match="already ended"):
        execute(world.ctx(), op(ctx), lambda run: world.steps(4), takeover=dead.id)


def test_takeover_rolls_back_and_only_one_of_two_wins(world: World) -> None:
    ctx = world.ctx()
    now = world.clock()
    stale = now - timedelta(minutes=5)
    record = RunRecord(
        id="RUN-ORPHAN01", kind="test op", service="api", env="production", state="running",
        driver_user="alice", driver_host="box1", driver_pid=999999, token="dead", lease_seconds=60,
        started_at=stale, heartbeat_at=stale, lock_key="test/api@production",
    )  # fmt: skip
    ctx.store.create_run(record)
    from opsctl.state.base import Event

    for kind, index in (
        ("step_started", 0),
        ("step_done", 0),
        ("step_started", 1),
        ("step_done", 1),
        ("step_started", 2),
    ):
        ctx.store.add_event(Event("run", record.id, stale, "alice", kind, {"index": index}))

    new = RunRecord(**{**record.__dict__, "token": "mine", "driver_user": "bob", "heartbeat_at": now})
    wins: list[tuple[bool, str]] = []
    barrier = threading.Barrier(2)

    def contend(token: str) -> None:
        barrier.wait()
        won = ctx.store.takeover_run(RunRecord(**{**new.__dict__, "token": token}), "dead", now - timedelta(seconds=60))
        wins.append((won, token))

    threads = [threading.Thread(target=contend, args=(t,)) for t in ("t1", "t2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(w for w, _ in wins) == [False, True]  # one winner

    winner = next(token for won, token in wins if won)
    assert not ctx.store.takeover_run(new, "dead", now)  # a takeover based on a stale read loses
    # the winner stopped half-way too (interrupted): a later process rolls the run back
    ctx.store.update_run(RunRecord(**{**record.__dict__, "token": winner, "state": "interrupted"}))
    ctx2 = world.ctx()
    result = execute(ctx2, op(ctx2), lambda run: world.steps(4), takeover="run-orphan01", rollback=True)
    assert result.state == "rolled_back" and world.log == ["undo 2", "undo 1", "undo 0"]


def test_a_live_run_cannot_be_taken_over(world: World) -> None:
    ctx = world.ctx()
    now = world.clock()
    record = RunRecord(
        id="RUN-ALIVE001", kind="test op", service="api", env="production", state="running",
        driver_user="alice", driver_host="box1", driver_pid=1, token="live", lease_seconds=60,
        started_at=now, heartbeat_at=now, lock_key="test/api@production",
    )  # fmt: skip
    ctx.store.create_run(record)
    with pytest.raises(RefusedError, match="still driven by alice@box1"):
        execute(ctx, op(ctx), lambda run: world.steps(1), takeover=record.id)


def test_a_long_operation_refuses_to_start_over_an_orphaned_run_a_short_one_supersedes_it(world: World) -> None:
    ctx = world.ctx()
    stale = world.clock() - timedelta(minutes=5)
    record = RunRecord(
        id="RUN-ORPHAN02", kind="test op", service="api", env="production", state="running",
        driver_user="alice", driver_host="box1", driver_pid=2, token="gone", lease_seconds=60,
        started_at=stale, heartbeat_at=stale, step="s1", lock_key="test/api@production",
    )  # fmt: skip
    ctx.store.create_run(record)
    with pytest.raises(RefusedError, match="was orphaned at step 's1'"):
        execute(ctx, op(ctx), lambda run: world.steps(1))
    assert world.log == []
    execute(ctx, op(ctx, short=True), lambda run: world.steps(1))
    closed = ctx.store.get_run(record.id)
    assert closed is not None and closed.state == "interrupted" and "superseded" in closed.message


def test_sigterm_stops_at_the_next_safe_point_and_compensates(world: World, live_signals: Any) -> None:
    ctx = world.ctx()
    steps = world.steps(4)

    def signalled(run: Any) -> int:
        world.log.append("apply 1")
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while this step runs
        run.sleep(30)  # a bake: the signal cuts it short
        world.log.append("never")
        return 1

    steps[1].apply = signalled
    with pytest.raises(RunError) as caught:
        execute(ctx, op(ctx), lambda run: steps)
    assert caught.value.exit_code == ExitCode.INTERRUPTED
    assert world.log == ["apply 0", "apply 1", "undo 1", "undo 0"]
    assert caught.value.result.state == "interrupted" and "interrupted by SIGTERM" in caught.value.message
    assert [o for o, _ in audit_of(ctx)] == ["started", "interrupted"]
    assert ctx.locks.holder("test/api@production", world.clock()) is None
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_signals_during_the_rollback_are_reported_and_the_third_abandons_it(world: World, live_signals: Any) -> None:
    ctx = world.ctx()
    steps = world.steps(3, fail_at=2)
    said: list[str] = []
    ctx.output.warn = said.append  # type: ignore[method-assign]

    def noisy_undo(run: Any) -> None:
        world.log.append("undo 1")
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGINT)

    steps[1].compensate = noisy_undo
    with pytest.raises(RunError) as caught:
        execute(ctx, op(ctx), lambda run: steps)
    assert world.log == ["apply 0", "apply 1", "apply 2", "undo 2", "undo 1"]  # undo 0 never ran
    assert sum("still undoing 's1', 's0'" in s for s in said) == 2
    assert any("abandoning the rollback" in s for s in said)
    assert "abandoned" in caught.value.message and "still applied: 's0', 's1'" in caught.value.message
    assert caught.value.result.state == "failed"


def test_short_operations_wait_for_the_lock_then_go_ahead(world: World) -> None:
    ctx = world.ctx()
    other = Lease(
        ctx.locks,
        "test/api@production",
        command="incident declare",
        ttl=timedelta(seconds=60),
        clock=world.clock,
        background=False,
    )
    other.acquire()
    said: list[str] = []
    ctx.output.info = said.append  # type: ignore[method-assign]
    released = []

    def sleep(seconds: float) -> None:
        world.clock.sleep(seconds)
        if sum(world.clock.slept) >= 3 and not released:
            other.release()
            released.append(True)

    ctx.sleep = sleep
    result = execute(ctx, op(ctx, short=True), lambda run: world.steps(1))
    assert result.state == "succeeded" and released
    assert any("waiting up to 15s" in s and "incident declare" in s for s in said)

    other = Lease(
        ctx.locks, "test/api@production", command="stuck", ttl=timedelta(hours=1), clock=world.clock, background=False
    )
    other.acquire()
    ctx.sleep = world.clock.sleep
    start = world.clock()
    with pytest.raises(LockHeldError):
        execute(ctx, op(ctx, short=True), lambda run: world.steps(1))
    assert timedelta(seconds=15) <= world.clock() - start <= timedelta(seconds=16)
    with pytest.raises(LockHeldError):  # a long operation refuses at once
        execute(ctx, op(ctx), lambda run: world.steps(1))


def test_progress_rate_and_eta_from_the_injected_clock(world: World) -> None:
    ctx = world.ctx()
    seen: list[dict[str, Any]] = []

    def batches(run: Any) -> None:
        run.progress.phase("backfill", total=1000, unit="rows")
        for _ in range(4):
            world.clock.advance(seconds=10)
            run.progress.update(advance=100, status="batch ok")
            seen.append(run.progress.snapshot.to_dict())
        run.lease.beat()  # the heartbeat carries the progress into the run record

    steps = [Step("fill", "UPDATE in batches", apply=batches)]
    result = execute(ctx, op(ctx), lambda run: steps)
    assert seen[-1]["done"] == 400 and seen[-1]["rate"] == pytest.approx(10.0)
    assert seen[-1]["eta_seconds"] == pytest.approx(60.0) and seen[-1]["status"] == "batch ok"
    stored = views.show(ctx, result.run_id or "")
    assert stored["progress"]["done"] == 400 and stored["progress"]["phase"] == "backfill"


def test_confirmation_by_policy_before_the_lock_is_refused_without_a_terminal(world: World) -> None:
    ctx = world.ctx(is_tty=lambda: False)  # production: policy wants a confirmation
    with pytest.raises(RefusedError, match="confirmation needed to roll out api:2"):
        execute(ctx, op(ctx, confirm="roll out api:2"), lambda run: world.steps(1))
    assert world.log == [] and ctx.store.list_runs() == [] and audit_of(ctx) == [("refused", None)]
    result = execute(
        world.ctx(is_tty=lambda: False, yes=True), op(ctx, confirm="roll out api:2"), lambda run: world.steps(1)
    )
    assert result.state == "succeeded" and world.log == ["apply 0"]


def test_a_signal_ignored_at_start_stays_ignored(world: World, live_signals: Any) -> None:
    """nohup and background jobs: opsctl does not take over a signal its caller chose to ignore."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    ctx = world.ctx()
    steps = world.steps(2)

    def hangup(run: Any) -> int:
        world.log.append("apply 0")
        os.kill(os.getpid(), signal.SIGHUP)  # ignored: the run goes on
        run.sleep(1)
        return 0

    steps[0].apply = hangup
    assert execute(ctx, op(ctx), lambda run: steps).state == "succeeded"
    assert world.log == ["apply 0", "apply 1"]


def test_a_step_can_pause_the_run_for_a_decision_and_it_is_resumed_later(world: World) -> None:
    from opsctl.operations.model import Pause

    ctx = world.ctx()
    steps = world.steps(3)

    def undecided(run: Any) -> int:
        world.log.append("apply 1")
        if not run.data.get("decided"):
            raise Pause("3 inconclusive checks in a row", hint="promote, roll back or resume")
        return 1

    steps[1].apply = undecided
    with pytest.raises(RunError) as caught:
        execute(ctx, op(ctx), lambda run: steps)
    assert caught.value.exit_code == ExitCode.FAILED and caught.value.result.state == "paused"
    assert world.log == ["apply 0", "apply 1"]  # nothing undone
    [paused] = views.list_runs(ctx, service=None, env=None, include_finished=False, limit=5)
    assert paused["state"] == "paused" and ctx.locks.holder("test/api@production", world.clock()) is None
    assert [o for o, _ in audit_of(ctx)] == ["started", "paused"]

    def decided(run: Any) -> list[Step]:
        run.save(decided=True)
        return steps

    world.log.clear()
    result = execute(world.ctx(), op(ctx), decided, takeover=paused["id"])
    assert result.state == "succeeded" and world.log == ["apply 1", "apply 2"]


def test_requests_reach_the_live_driver_once(world: World) -> None:
    ctx = world.ctx()
    seen: list[list[str]] = []

    def listen(run: Any) -> None:
        views.request(ctx, run.id, "promote", full=True)
        views.request(ctx, run.id, "abort")
        seen.append([r["action"] for r in run.requests()])
        seen.append([r["action"] for r in run.requests()])

    execute(ctx, op(ctx), lambda run: [Step("listen", "wait for requests", apply=listen)])
    assert seen == [["promote", "abort"], []]
