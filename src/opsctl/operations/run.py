"""The live handle of one run: its record in the state store, its timeline, its progress.

Steps receive the :class:`Run`: ``run.params`` (what the engine asked for), ``run.data``
(the engine's own state: a rollout's weights, a backfill's cursor — ``run.save(...)`` writes
it through), ``run.progress`` (the progress port), ``run.sleep(seconds)`` (cut short by a
signal or a lost lease), ``run.checkpoint()`` (raises at a safe point) and ``run.note(...)``.
Every write is guarded by the driver's token: a run that was taken over is no longer ours.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opsctl.operations.model import Interrupted, LeaseLost, Step
from opsctl.operations.progress import Progress, Snapshot
from opsctl.state.base import Event, RunRecord

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.operations.signals import SignalGuard
    from opsctl.state.lease import Lease

log = logging.getLogger("opsctl.runs")

EVENT_KIND = "run"


class Run:
    def __init__(
        self,
        ctx: Context,
        record: RunRecord,
        lease: Lease | None,
        guard: SignalGuard,
        *,
        dry: bool = False,
        quiet: bool = False,
    ) -> None:
        self.ctx, self.record, self.lease, self.guard = ctx, record, lease, guard
        self.dry = dry  # a dry run's stand-in: the plan is built from it, nothing is written
        self.persisted = False  # written to the store once the plan is made (or when taken over)
        self.notes: list[str] = []
        self.changed = False  # a step began applying: a 'started' audit record was written
        self.progress = Progress(
            ctx.progress_sink(quiet=quiet or dry),
            ctx.clock,
            title=f"{record.kind} {record.service or '-'}@{record.env} ({record.id})",
            on_change=self._remember,
        )
        self._snapshot: dict[str, Any] = {}
        self._request_seq = 0  # requests up to this timeline position were seen (or predate us)
        if lease is not None:
            lease.on_beat("run", self._heartbeat)
            lease.on_lost(lambda reason: guard.stop.set())

    # ----------------------------------------------------------- for the engine
    @property
    def id(self) -> str:
        return self.record.id

    @property
    def params(self) -> dict[str, Any]:
        return self.record.params

    @property
    def data(self) -> dict[str, Any]:
        return self.record.data

    def save(self, **data: Any) -> None:
        """Merge ``data`` into the engine's state and write it through (resumable from here)."""
        self.record.data.update(data)
        self.write()

    def note(self, text: str) -> None:
        """A line for the audit message and the timeline."""
        self.notes.append(text)
        self.event("note", text=text)

    def checkpoint(self) -> None:
        """A safe point: raise if a signal asked us to stop or the lease was lost."""
        if self.lease is not None and self.lease.lost:
            raise LeaseLost(self.lease.lost_reason)
        signame = self.guard.pending()
        if signame is not None:
            raise Interrupted(signame)

    def requests(self) -> list[dict[str, Any]]:
        """Requests other processes left for this run since the last call (``deploy promote``,
        ``deploy rollback`` while it runs), oldest first: ``{"action": …, "by": …, …}``."""
        if self.dry or not self.persisted:
            return []
        events = [
            e for e in self.ctx.store.list_events(EVENT_KIND, self.id)
            if e.type == "request" and (e.seq or 0) > self._request_seq
        ]  # fmt: skip
        if events:
            self._request_seq = max(e.seq or 0 for e in events)
            for e in events:  # the requester waits for this
                self.event("request_seen", action=e.data.get("action"), request=e.seq)
        return [{**e.data, "by": e.author, "at": e.at} for e in events]

    def skip_requests(self) -> None:
        """Ignore requests left before now (a new driver does not act on its predecessor's)."""
        events = self.ctx.store.list_events(EVENT_KIND, self.id) if self.persisted and not self.dry else []
        self._request_seq = max((e.seq or 0 for e in events), default=0)

    def checkpoint_lease(self) -> None:
        """Raise if the lease is gone (compensations, too, are changes that need the lock)."""
        if self.lease is not None and (self.lease.lost or not self.lease.beat()):
            raise LeaseLost(self.lease.lost_reason)

    def sleep(self, seconds: float) -> None:
        """Wait (a bake time, a poll interval); a signal or a lost lease cuts it short."""
        self.checkpoint()
        self.ctx.sleep(seconds)
        self.checkpoint()

    # ----------------------------------------------------------- for the runner
    def event(self, type_: str, **data: Any) -> None:
        from opsctl.operations.audit import current_user
        from opsctl.redact import redact_data

        if self.dry or not self.persisted:
            return
        clean = redact_data({k: v for k, v in data.items() if v is not None})
        self.ctx.store.add_event(Event(EVENT_KIND, self.id, self.ctx.clock(), current_user(), type_, clean))

    def write(self) -> None:
        """Persist the record; a refusal means another driver took the run over."""
        if self.dry or not self.persisted:
            return
        if not self.ctx.store.update_run(self.record):
            if self.lease is not None and not self.lease.lost:
                self.lease._lose(f"run {self.id} is no longer driven by this process (taken over)")
            raise LeaseLost(f"run {self.id} is no longer driven by this process (taken over)")

    def boundary(self) -> None:
        """Between steps: renew the lease now (a frozen process learns it lost it), then check."""
        if self.lease is not None:
            self.lease.beat()
        self.checkpoint()

    def set_plan(self, steps: list[Step]) -> None:
        from opsctl.output import to_plain
        from opsctl.redact import redact_data

        self.record.plan = redact_data(to_plain([s.describe() for s in steps]))
        self.write()

    def step_started(self, index: int, step: Step, total: int) -> None:
        self.record.step, self.record.step_index = step.name, index
        self.record.heartbeat_at = self.ctx.clock()
        self.write()
        self.event("step_started", index=index, step=step.name, action=step.action)
        self.progress.phase(step.name, step=index + 1, steps=total)

    def step_done(self, index: int, step: Step, value: Any) -> None:
        self.record.step_index = index + 1
        self.write()
        data: dict[str, Any] = {"index": index, "step": step.name}
        if isinstance(value, str | int | float | bool | dict | list) and value not in ("", None):
            data["result"] = value
        self.event("step_done", **data)

    def finish(self, state: str, message: str) -> None:
        from opsctl.redact import redact

        self.record.state, self.record.message = state, redact(message)
        self.record.finished_at = self.ctx.clock()
        self.record.progress = self._snapshot or self.record.progress
        try:
            self.write()
        except LeaseLost:
            log.warning("run %s was taken over; its end (%s) is not recorded by this process", self.id, state)
            return
        self.event("finished", state=state, message=self.record.message)

    # ----------------------------------------------------------- heartbeat
    def _remember(self, snap: Snapshot) -> None:
        self._snapshot = snap.to_dict()

    def _heartbeat(self, now: Any) -> bool:
        if self.record.state != "running" or not self.persisted:  # not written yet, or finished
            return True
        ok = self.ctx.store.heartbeat_run(self.id, self.record.token, now, self._snapshot or None)
        if ok:
            self.record.heartbeat_at = now
        return ok
