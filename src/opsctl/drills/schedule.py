"""`drill status`: for each service and drill type, the last drill, its result, when the next one is
due (from the cadence in config: a calendar month is a month) and whether it is overdue.

A drill counts towards the schedule when it passed (with or without conditions); a failed drill is
shown as the last run but proves nothing, so the due date still runs from the last passing one.
A service that never passed a drill of a type it must run is overdue."""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsctl.drills.report import FAILED, PREFIX, result_of
from opsctl.settings.drills import NAMED_CADENCES
from opsctl.timeutil import isoformat

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.settings import Service
    from opsctl.state.base import RunRecord

TYPES = ("restore", "failover")


def add_months(at: datetime, months: int) -> datetime:
    """The same day and time ``months`` later (the 31st becomes the month's last day)."""
    month = at.month - 1 + months
    year, month = at.year + month // 12, month % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def next_due(last: datetime, cadence: str) -> datetime | None:
    text = NAMED_CADENCES.get(cadence, cadence)
    if text == "-":
        return None
    match = re.fullmatch(r"(\d+)\s*(d|w|months?|month)", text)
    if match is None:
        raise ValueError(f"bad cadence {cadence!r}")
    count, unit = int(match.group(1)), match.group(2)
    if unit.startswith("month"):
        return add_months(last, count)
    return last + timedelta(days=count * (7 if unit == "w" else 1))


def applies(service: Service, kind: str) -> bool:
    """Which drills a service must run: a restore drill when it has backups, a failover drill when
    it has a replica."""
    db = service.database
    if db is None:
        return False
    if kind == "restore":
        return db.backup is not None
    return bool(db.replica or db.replica_dsn)


def cadence_of(ctx: Context, service: Service, kind: str) -> str:
    own = getattr(service.drills, kind, None) if service.drills is not None else None
    return str(own or getattr(ctx.settings.policy.drills, kind))


def status(ctx: Context, *, service: str | None = None) -> list[dict[str, Any]]:
    now = ctx.clock()
    env = ctx.env
    services = [ctx.service(service)] if service else [ctx.service(s.name) for s in ctx.settings.services]
    runs = [r for r in ctx.store.list_runs(service=service, env=env, limit=5000) if r.kind.startswith(PREFIX)]
    rows = []
    for svc in services:
        for kind in TYPES:
            if not applies(svc, kind):
                continue
            rows.append(_row(svc, kind, cadence_of(ctx, svc, kind), [r for r in runs if r.service == svc.name
                                                                       and r.kind == PREFIX + kind], now, env))  # fmt: skip
    return rows


def _row(service: Service, kind: str, cadence: str, runs: list[RunRecord], now: datetime, env: str) -> dict[str, Any]:
    finished = sorted((r for r in runs if r.state != "running" and r.finished_at), key=lambda r: r.started_at)
    last = finished[-1] if finished else None
    passing = [r for r in finished if result_of(r) != FAILED]
    anchor = passing[-1].started_at if passing else None
    due = next_due(anchor, cadence) if anchor is not None else None
    never = cadence == "never"
    overdue = False if never else (anchor is None or (due is not None and now > due))
    return {
        "service": service.name, "env": env, "tier": service.tier, "drill": kind, "cadence": cadence,
        "last_run": isoformat(last.started_at) if last else None, "last_id": last.id if last else None,
        "last_result": result_of(last) if last else None,
        "last_passed": isoformat(anchor), "next_due": isoformat(due) if due else None, "overdue": overdue,
    }  # fmt: skip
