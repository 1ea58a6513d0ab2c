"""The runner every mutating command uses.

``execute(ctx, operation, plan)``: confirm (when policy says so), take the lock (short
operations wait for it a bounded time), create the run record, build the steps under the
lock, then apply them one by one — a ``started`` audit record before the first change,
heartbeats with the lease, signals handled at safe points, compensations in reverse when a
step fails or a signal stops the run — and end with the outcome audit record and the lock
released.  ``--dry-run`` builds the same steps and returns them as the plan.

``execute(..., takeover=RUN_ID)`` takes over an orphaned (or interrupted, or failed) run
atomically and resumes it, or with ``rollback=True`` undoes what it did.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsctl.errors import ExitCode, RefusedError, UsageError
from opsctl.operations import audit
from opsctl.operations.audit import outcome_of
from opsctl.operations.drive import Drive, quietly
from opsctl.operations.model import (
    FAILED,
    INTERRUPTED,
    ROLLED_BACK,
    RUNNING,
    SUCCEEDED,
    Operation,
    RunResult,
    Step,
)
from opsctl.operations.run import Run
from opsctl.operations.signals import SignalGuard
from opsctl.state.base import ConflictError, RunRecord

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.state.lease import Lease

log = logging.getLogger("opsctl.runs")

Plan = Callable[[Run], list[Step]]


def execute(
    ctx: Context, op: Operation, plan: Plan, *, takeover: str | None = None, rollback: bool = False
) -> RunResult:
    env = op.env or ctx.env
    runner = _Runner(ctx, op, env, plan)
    try:
        if op.check is not None:
            op.check()
    except BaseException as exc:
        runner.audit_exception(exc, None)
        raise
    if ctx.dry_run:
        return runner.rehearse()
    try:
        if op.confirm:
            ctx.confirm(op.confirm, service=op.service, always=op.must_confirm)
    except BaseException as exc:
        runner.audit_exception(exc, None)
        raise
    with SignalGuard(notify=ctx.output.warn) as guard:
        return runner.go(guard, takeover=takeover, rollback=rollback)


class _Runner:
    def __init__(self, ctx: Context, op: Operation, env: str, plan: Plan) -> None:
        self.ctx, self.op, self.env, self.plan = ctx, op, env, plan
        self.service = op.service.name if op.service is not None else None

    # ------------------------------------------------------------------ audit
    def audit(self, outcome: str, code: ExitCode | int, message: str, run_id: str | None) -> None:
        audit.write(
            self.ctx, command=self.op.kind, service=self.service, env=self.env, args=self.op.params,
            outcome=outcome, code=code, message=message, run_id=run_id,
        )  # fmt: skip

    def audit_exception(self, exc: BaseException, run_id: str | None) -> None:
        outcome, code, message = outcome_of(exc)
        self.audit(outcome, code, message, run_id)

    # ------------------------------------------------------------------ dry run
    def rehearse(self) -> RunResult:
        from opsctl.operations.signals import SignalGuard as Guard

        lock_key = self._lock_key()
        try:
            if lock_key is not None:
                holder = self.ctx.locks.holder(lock_key, self.ctx.clock())
                if holder is not None:
                    self.ctx.output.warn(
                        f"{lock_key} is locked by {holder.user}@{holder.host} (pid {holder.pid});"
                        " a real run would " + ("wait for it" if self.op.short else "be refused")
                    )
            stand_in = Run(self.ctx, self._record("(dry run)", lock_key), None, Guard(lambda _: None), dry=True)
            steps = self.plan(stand_in)
        except BaseException as exc:
            self.audit_exception(exc, None)
            raise
        described = [s.describe() for s in steps]
        self.audit("ok", ExitCode.OK, f"dry run: {len(steps)} steps planned", None)
        return RunResult("planned", None, described, notes=stand_in.notes, dry_run=True)

    # ------------------------------------------------------------------ a real run
    def go(self, guard: SignalGuard, *, takeover: str | None, rollback: bool) -> RunResult:
        lease: Lease | None = None
        run: Run | None = None
        try:
            lease = self._take_lock()
            if takeover is not None:
                run, done, in_progress = self._take_over(takeover, lease, guard, rollback)
            else:
                run, done, in_progress = self._begin(lease, guard), set(), None
            guard.phase = "planning"
            steps = self.plan(run)
            if not run.persisted:
                self._create(run)
            run.set_plan(steps)
            guard.phase = "applying"
            return Drive(self, run, steps, guard).go(done, in_progress, rollback)
        except BaseException as exc:
            if getattr(exc, "_opsctl_audited", False):
                raise
            if run is not None and run.record.state == RUNNING:
                outcome, _, message = outcome_of(exc)
                quietly(run.finish, INTERRUPTED if outcome == "interrupted" else FAILED, message)
            self.audit_exception(exc, run.id if run is not None and run.persisted else None)
            raise
        finally:
            if lease is not None:
                lease.release()

    def _lock_key(self) -> str | None:
        from opsctl.state.locks import lock_key

        return None if self.op.lock is None else lock_key(self.op.lock, self.service or "-", self.env)

    def _take_lock(self) -> Lease | None:
        from opsctl.state.lease import Lease

        key = self._lock_key()
        if key is None:
            return None
        policy = self.ctx.settings.policy
        lease = Lease(self.ctx.locks, key, command=self.op.kind, ttl=policy.lock_ttl, clock=self.ctx.clock)
        if not self.op.short:
            lease.acquire()
            return lease
        wait = getattr(policy, "lock_wait", timedelta(seconds=15))

        def waiting(holder: Any) -> None:
            self.ctx.output.info(
                f"waiting up to {int(wait.total_seconds())}s for {key}, held by {holder.user}@{holder.host}"
                f" (pid {holder.pid}, running '{holder.command}')"
            )

        lease.acquire_waiting(
            wait, sleep=self.ctx.sleep, monotonic=lambda: self.ctx.clock().timestamp(), on_wait=waiting
        )
        return lease

    def _record(self, token: str, lock_key: str | None) -> RunRecord:
        from opsctl.ids import new_id

        now = self.ctx.clock()
        return RunRecord(
            id=new_id("RUN"), kind=self.op.kind, service=self.service, env=self.env, state=RUNNING,
            driver_user=audit.current_user(), driver_host=socket.gethostname(), driver_pid=os.getpid(),
            token=token, lease_seconds=self.ctx.settings.policy.lock_ttl.total_seconds(), started_at=now,
            heartbeat_at=now, params=audit.clean_args(self.op.params), lock_key=lock_key,
        )  # fmt: skip

    def _begin(self, lease: Lease | None, guard: SignalGuard) -> Run:
        """The run, not yet in the store: it is written once the plan is made (a refusal while
        planning — the incident is already resolved — leaves an audit record, not a run)."""
        key = lease.key if lease is not None else None
        if key is not None:
            self._orphans(key)
        token = lease.token if lease is not None else secrets.token_hex(16)
        return Run(self.ctx, self._record(token, key), lease, guard, quiet=self.op.short)

    def _create(self, run: Run) -> None:
        from opsctl.ids import new_id

        for _ in range(5):
            try:
                self.ctx.store.create_run(run.record)
            except ConflictError:
                run.record.id = new_id("RUN")
                continue
            run.persisted = True
            return
        raise RefusedError("could not create a run record with a fresh id after 5 attempts")

    def _orphans(self, key: str) -> None:
        """Runs on this lock whose driver died: a short operation closes them (it supersedes them);
        a long one refuses, so that nobody starts over a half-done change unknowingly."""
        from opsctl.operations.views import is_orphaned

        now = self.ctx.clock()
        for old in self.ctx.store.list_runs(service=self.service, env=self.env, states=[RUNNING]):
            if old.lock_key != key or not is_orphaned(old, now):
                continue
            if not (self.op.short or self.op.supersede):
                raise RefusedError(
                    f"run {old.id} ({old.kind}) on {key} was orphaned at step '{old.step or '-'}'"
                    f" when {old.driver_user}@{old.driver_host} (pid {old.driver_pid}) stopped",
                    f"resume it or roll it back first; 'opsctl runs show {old.id}' has its timeline",
                )
            closed = RunRecord(**{**old.__dict__, "token": secrets.token_hex(16), "heartbeat_at": now})
            stale = now - timedelta(seconds=old.lease_seconds)
            if self.ctx.store.takeover_run(closed, old.token, stale):
                closed.state, closed.finished_at = INTERRUPTED, now
                closed.message = f"orphaned (its driver stopped); superseded by a new {self.op.kind}"
                self.ctx.store.update_run(closed)

    def _take_over(
        self, run_id: str, lease: Lease | None, guard: SignalGuard, rollback: bool
    ) -> tuple[Run, set[int], int | None]:
        from opsctl.operations.views import is_orphaned, timeline_state

        store, now = self.ctx.store, self.ctx.clock()
        old = store.get_run(run_id.strip().upper())
        if old is None:
            raise UsageError(f"no run {run_id!r}", "run 'opsctl runs --all' to see them")
        if (old.kind, old.service, old.env) != (self.op.kind, self.service, self.env):
            raise UsageError(f"run {old.id} is a {old.kind} of {old.service}@{old.env}, not this operation")
        if old.state in (SUCCEEDED, ROLLED_BACK):
            raise RefusedError(f"run {old.id} already ended ({old.state}); there is nothing to take over")
        driver = f"{old.driver_user}@{old.driver_host} (pid {old.driver_pid})"
        if old.state == RUNNING and not is_orphaned(old, now):
            age = int((now - old.heartbeat_at).total_seconds())
            raise RefusedError(
                f"run {old.id} is still driven by {driver}: its last heartbeat was {age}s ago",
                "it is not orphaned; wait for it, or stop that process first",
            )
        new = self._record(lease.token if lease is not None else secrets.token_hex(16), old.lock_key)
        taken = RunRecord(**{**old.__dict__, **{f: getattr(new, f) for f in _DRIVER_FIELDS}, "state": RUNNING})
        if not store.takeover_run(taken, old.token, now - timedelta(seconds=old.lease_seconds)):
            raise RefusedError(f"run {old.id} was taken over by someone else first", f"see 'opsctl runs show {old.id}'")
        me = f"{new.driver_user}@{new.driver_host} (pid {new.driver_pid})"
        mode = "roll it back" if rollback else "resume it"
        run = Run(self.ctx, taken, lease, guard, quiet=self.op.short)
        run.persisted = True
        run.skip_requests()
        run.event("takeover", previous=driver, driver=me, mode="rollback" if rollback else "resume")
        self.audit("takeover", ExitCode.OK, f"{me} took over run {old.id} from {driver} to {mode}", old.id)
        done, in_progress = timeline_state(store.list_events("run", old.id))
        run.changed = True
        return run, done, in_progress


_DRIVER_FIELDS = ("driver_user", "driver_host", "driver_pid", "token", "lease_seconds", "heartbeat_at", "lock_key")
