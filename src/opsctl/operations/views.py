"""Reading runs: the list (what is running now, orphaned ones marked) and one run's timeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsctl.operations.model import ACTIVE, ORPHANED, PAUSED, RUNNING
from opsctl.timeutil import isoformat

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.state.base import Event, RunRecord


def is_orphaned(run: RunRecord, now: datetime) -> bool:
    """A running run whose heartbeat is older than its lease: its driver is gone (or frozen)."""
    return run.state == RUNNING and run.heartbeat_at + timedelta(seconds=run.lease_seconds) < now


def state_of(run: RunRecord, now: datetime) -> str:
    return ORPHANED if is_orphaned(run, now) else run.state


def to_dict(run: RunRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind,
        "service": run.service,
        "env": run.env,
        "state": state_of(run, now),
        "step": run.step,
        "step_index": run.step_index,
        "steps": len(run.plan),
        "progress": run.progress,
        "driver": {"user": run.driver_user, "host": run.driver_host, "pid": run.driver_pid},
        "started_at": isoformat(run.started_at),
        "heartbeat_at": isoformat(run.heartbeat_at),
        "heartbeat_age_seconds": (
            max(0, int((now - run.heartbeat_at).total_seconds())) if run.state == RUNNING else None
        ),
        "finished_at": isoformat(run.finished_at),
        "lease_seconds": run.lease_seconds,
        "lock": run.lock_key,
        "message": run.message,
    }


def list_runs(
    ctx: Context, *, service: str | None, env: str | None, include_finished: bool, limit: int
) -> list[dict[str, Any]]:
    states = None if include_finished else [RUNNING, PAUSED]
    now = ctx.clock()
    runs = ctx.store.list_runs(service=service, env=env, states=states, limit=limit)
    rows = [to_dict(r, now) for r in runs]
    return rows if include_finished else [r for r in rows if r["state"] in ACTIVE]


def show(ctx: Context, run_id: str) -> dict[str, Any]:
    from opsctl.errors import UsageError
    from opsctl.ids import normalise

    run = ctx.store.get_run(normalise(run_id, "RUN"))
    if run is None:
        raise UsageError(f"no run {run_id!r}", "run 'opsctl runs --all' to see them")
    data = to_dict(run, ctx.clock())
    data["plan"] = run.plan
    data["data"] = run.data
    data["params"] = run.params
    data["timeline"] = [
        {"at": isoformat(e.at), "author": e.author, "event": e.type, **({"data": e.data} if e.data else {})}
        for e in ctx.store.list_events("run", run.id)
    ]
    return data


def timeline_state(events: list[Event]) -> tuple[set[int], int | None]:
    """From a run's timeline: the steps done (and not undone), and the one in progress, if any."""
    started: set[int] = set()
    done: set[int] = set()
    undone: set[int] = set()
    for event in events:
        index = event.data.get("index")
        if not isinstance(index, int):
            continue
        if event.type == "step_started":
            started.add(index)
        elif event.type == "step_done":
            done.add(index)
        elif event.type == "compensated":
            undone.add(index)
    in_progress = sorted(started - done - undone)
    return done - undone, (in_progress[-1] if in_progress else None)


def request(ctx: Context, run_id: str, action: str, **data: Any) -> int:
    """Leave a request for a run's live driver (it acts on it at its next check); its timeline
    position, to wait for with :func:`seen`."""
    from opsctl.operations.audit import current_user
    from opsctl.state.base import Event

    event = ctx.store.add_event(
        Event("run", run_id, ctx.clock(), current_user(), "request", {"action": action, **data})
    )
    return event.seq or 0


def seen(ctx: Context, run_id: str, request_seq: int) -> bool:
    """Whether the run's driver has picked up the request at ``request_seq``."""
    return any(
        e.type == "request_seen" and e.data.get("request") == request_seq for e in ctx.store.list_events("run", run_id)
    )
