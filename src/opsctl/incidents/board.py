"""`incident watch`: snapshots of the open incidents, taken every interval (data only).

The command draws them — a live board on a terminal, one JSON document per line or one
plain table per snapshot otherwise; this module never imports rich.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opsctl.incidents.views import list_incidents
from opsctl.timeutil import isoformat

if TYPE_CHECKING:
    from opsctl.context import Context


def snapshot(ctx: Context, service: str | None) -> dict[str, Any]:
    rows = list_incidents(ctx, include_resolved=False, service=service)
    overdue = sum(1 for r in rows if r["ack_overdue"] or r["update_overdue"])
    return {"at": isoformat(ctx.clock()), "open": len(rows), "overdue": overdue, "incidents": rows}


def title(snap: dict[str, Any]) -> str:
    overdue = f" — {snap['overdue']} OVERDUE" if snap["overdue"] else ""
    return f"open incidents: {snap['open']}{overdue}   {snap['at']}"


def snapshots(
    ctx: Context, *, interval: float, service: str | None, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """A snapshot now, then one every ``interval`` seconds (``limit`` of them, or until stopped)."""
    taken = 0
    while limit is None or taken < limit:
        if taken:
            ctx.sleep(interval)
        yield snapshot(ctx, service)
        taken += 1
