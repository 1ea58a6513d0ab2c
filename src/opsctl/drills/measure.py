"""What a drill measures, and how it keeps it in its run record.

RPO: a marker row is written to the primary once a second before the moment of "failure"; after
the recovery, the markers the new primary (or the restored copy) holds are compared with the ones
written.  No marker lost: the loss is under the marker interval (reported as 0).  Markers lost:
the loss is from the newest surviving marker to the failure; none survived: from the recovery
point the copy reports, or at least from the first marker (then flagged as a lower bound).

RTO: from the failure to the first write the new primary accepted, on this process's monotonic
clock (one clock, whatever the servers' clocks say)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsctl.timeutil import isoformat

if TYPE_CHECKING:
    import psycopg

    from opsctl.operations.run import Run


def observe(run: Run, text: str, *, follow_up: str | None = None) -> None:
    """An observation for the report (and, when given, the follow-up action it calls for)."""
    seen = list(run.data.get("observations") or [])
    if text not in seen:
        seen.append(text)
    changes: dict[str, Any] = {"observations": seen}
    if follow_up:
        todo = list(run.data.get("follow_ups") or [])
        if follow_up not in todo:
            todo.append(follow_up)
        changes["follow_ups"] = todo
    run.save(**changes)


def write_markers(run: Run, conn: psycopg.Connection[Any], seconds: float) -> list[dict[str, Any]]:
    """One marker a second for ``seconds`` (at least one), each kept in the run record as written."""
    from opsctl.drills import pgnode

    pgnode.ensure_markers(conn)
    count = max(1, round(seconds))
    written: list[dict[str, Any]] = []
    start = time.monotonic()
    for seq in range(1, count + 1):
        marker = pgnode.write_marker(conn, run.id, seq)
        written.append({"seq": marker.seq, "at": isoformat_precise(marker.at)})
        run.save(markers_written=written)
        run.progress.status(f"marker {seq}/{count} written to the primary")
        if seq < count:
            run.sleep(max(0.0, start + seq - time.monotonic()))
    return written


def isoformat_precise(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def _parse(text: Any) -> datetime | None:
    if isinstance(text, datetime):
        return text
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def rpo(
    written: list[dict[str, Any]], surviving: list[int], failure_at: datetime | None,
    recovered_to: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The data loss from the markers: ``actual_seconds``, which were lost, and how it was found."""
    seqs = [int(m["seq"]) for m in written]
    kept = set(surviving)
    lost = [s for s in seqs if s not in kept]
    out: dict[str, Any] = {"markers_written": len(seqs), "markers_survived": len(kept & set(seqs)), "lost": lost,
                           "interval_seconds": 1.0, "lower_bound": False,
                           "failure_at": isoformat_precise(failure_at) if failure_at else None}  # fmt: skip
    if not seqs or failure_at is None:
        out.update(actual_seconds=None, basis="no markers were written")
        return out
    if not lost:
        out.update(actual_seconds=0.0, basis="every marker survived (loss under the 1s marker interval)")
        return out
    at = {int(m["seq"]): _parse(m["at"]) for m in written}
    survivors = [s for s in seqs if s in kept]
    if survivors:
        newest = at[max(survivors)]
        out.update(
            actual_seconds=_seconds(failure_at, newest), basis=f"failure − newest surviving marker #{max(survivors)}"
        )
    elif recovered_to is not None:
        out.update(actual_seconds=_seconds(failure_at, recovered_to), basis="failure − the copy's recovery point")
    else:
        out.update(actual_seconds=_seconds(failure_at, at[seqs[0]]), basis="failure − first marker (all lost)",
                   lower_bound=True)  # fmt: skip
    return out


def _seconds(later: datetime, earlier: datetime | None) -> float | None:
    if earlier is None:
        return None
    return round(max(0.0, (later - earlier).total_seconds()), 3)


def target(target: timedelta, actual: float | None) -> dict[str, Any]:
    seconds = target.total_seconds()
    return {"target_seconds": seconds, "actual_seconds": actual, "met": actual is not None and actual <= seconds}


def stamp() -> float:
    return time.monotonic()


def when(conn: psycopg.Connection[Any] | None) -> datetime | None:
    """The server's clock (markers are compared on one clock), or None when it cannot be read."""
    if conn is None:
        return None
    from opsctl.drills import pgnode

    try:
        return pgnode.now(conn)
    except Exception:
        return None


__all__ = ["isoformat", "observe", "rpo", "target", "write_markers"]
