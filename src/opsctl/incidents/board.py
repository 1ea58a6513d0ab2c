"""`incident watch`: a live board of open incidents, redrawn until Ctrl-C."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opsctl.incidents.views import list_incidents

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.output import Column


def board(ctx: Context, rows: list[dict[str, Any]], columns: Sequence[Column]) -> Any:
    from opsctl.timeutil import isoformat

    overdue = sum(1 for r in rows if r["ack_overdue"] or r["update_overdue"])
    title = (
        f"open incidents: {len(rows)}" + (f" — {overdue} OVERDUE" if overdue else "") + f"   {isoformat(ctx.clock())}"
    )
    return ctx.output.table(rows, columns, title=title)


def run_board(
    ctx: Context, *, interval: float, service: str | None, columns: Sequence[Column], max_frames: int | None = None
) -> int:
    """Redraw every ``interval`` seconds; Ctrl-C ends it cleanly. Returns the frames drawn."""
    from rich.live import Live

    frames = 0
    try:
        with Live(
            board(ctx, list_incidents(ctx, include_resolved=False, service=service), columns),
            console=ctx.output.err,
            auto_refresh=False,
            transient=False,
        ) as live:
            while max_frames is None or frames < max_frames:
                live.update(
                    board(ctx, list_incidents(ctx, include_resolved=False, service=service), columns), refresh=True
                )
                frames += 1
                time.sleep(interval)
    except KeyboardInterrupt:
        ctx.output.info("left the board")
    return frames
