"""`opsctl cache audit|invalidate` and `opsctl ratelimit show|reset`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from opsctl.commands._common import context, plan_table
from opsctl.output import Column

if TYPE_CHECKING:
    from opsctl.context import Context

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
ratelimit = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

_SERVICE = typer.Argument(..., metavar="SERVICE", help="The service whose cache it is.")
_KEY = typer.Argument(..., metavar="KEY", help="scope:id, like ip:1.2.3.4, user:42, org:7, login:alice.")


def _size(value: Any) -> str:
    n = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(value)


@app.command("audit")
def audit(
    ctx: typer.Context,
    service: str = _SERVICE,
    match: str | None = typer.Option(None, "--match", metavar="PATTERN", help="Glob after the key prefix."),
    fix_ttl: str | None = typer.Option(None, "--fix-ttl", metavar="DURATION", help="Set this TTL on the offenders."),
) -> None:
    """Every key under the prefix against the TTL rule (SCAN, never KEYS); exit 1 when any breaks it."""
    from opsctl.cache.audit import audit as run
    from opsctl.errors import FailedError, UsageError
    from opsctl.timeutil import parse_duration

    c = context(ctx)
    ttl = None
    if fix_ttl is not None:
        try:
            ttl = parse_duration(fix_ttl)
        except ValueError as exc:
            raise UsageError(f"--fix-ttl: {exc}") from None
    report = run(c, service, match=match, fix_ttl=ttl)
    fixed = report.get("fixed") or {}
    if fixed.get("dry_run") and c.output.format == "table":
        plan_table(c, fixed["plan"])
    if c.output.format != "table":
        c.output.data(report)
    else:
        c.output.info(f"{report['service']}@{report['env']} — {report['pattern']} on {len(report['nodes'])} node(s)"
                      f"{' (cluster)' if report['cluster'] else ''}: {report['scanned']} keys, "
                      f"{report['without_ttl']} without a TTL, {report['over_max_ttl']} over their group's maximum")  # fmt: skip
        rows = [{"group": name, **g, "sample": ", ".join(g["sample"][:3]),
                 "memory": _size(g["memory_bytes_estimated"])} for name, g in report["groups"].items()]  # fmt: skip
        c.output.data(rows, columns=[
            Column("group"), Column("keys"), Column("without_ttl", "NO TTL", color=lambda v: "red" if v else None),
            Column("over_max_ttl", "OVER MAX", color=lambda v: "red" if v else None),
            Column("max_ttl_seconds", "MAX TTL (S)"), Column("memory", "NO-TTL MEMORY (EST.)"), Column("sample"),
        ])  # fmt: skip
        c.output.data([{"ttl": k, "keys": v} for k, v in report["ttl_histogram"].items()])
    if fixed and not fixed.get("dry_run"):
        c.output.success(f"TTL set on {fixed.get('set', 0)} key(s), lowered on {fixed.get('lowered', 0)}"
                         f" (run {fixed.get('run_id')})")  # fmt: skip
        if fixed.get("keys", 0) >= report["violations"]:
            return
    if report["violations"]:
        raise FailedError(f"{report['violations']} key(s) break the TTL policy", "fix them with --fix-ttl DURATION")


@app.command("invalidate")
def invalidate(
    ctx: typer.Context,
    service: str = _SERVICE,
    entity: str = typer.Argument(..., metavar="ENTITY", help="An entity of cache.entities (user, org, …)."),
    ids: list[str] = typer.Argument(..., metavar="ID...", help="The entity's ids."),
) -> None:
    """Delete the entity's cached keys and publish EntityUpdated (--dry-run lists the keys)."""
    from opsctl.cache.invalidate import invalidate as run

    c = context(ctx)
    result = run(c, service, entity, ids)
    if result.get("dry_run"):
        if c.output.format != "table":
            c.output.data(result)
            return
        plan_table(c, result["plan"])
        for key in result["keys"]:
            c.output.info(f"would delete {key}")
        return
    if c.output.format != "table":
        c.output.data(result)
        return
    for key in result["deleted"]:
        c.output.info(f"deleted {key}")
    event = result["event"] or {}
    where = f"channel {event.get('channel')}" if event.get("channel") else f"stream {event.get('stream')}"
    heard = f" ({event['receivers']} subscriber(s))" if event.get("receivers") is not None else ""
    c.output.success(f"{len(result['deleted'])} key(s) deleted; EntityUpdated published on {where}{heard}")


def _limit(c: Context, data: dict[str, Any]) -> None:
    if c.output.format != "table":
        c.output.data(data)
        return
    c.output.data({
        "key": data["key"], "X-RateLimit-Limit": data["limit"], "X-RateLimit-Remaining": data["remaining"],
        "X-RateLimit-Reset": f"{data['reset_at']} (in {data['reset_in_seconds']:.0f}s)", "count": data["count"],
        "window": f"{data['window']:.0f}s ({data['layout']})", "redis key": data["redis_key"],
    })  # fmt: skip


@ratelimit.command("show")
def show(ctx: typer.Context, key: str = _KEY) -> None:
    """The window's count, limit, remaining and reset time (the X-RateLimit-* headers)."""
    from opsctl.cache.ratelimit import show as run

    c = context(ctx)
    _limit(c, run(c, key))


@ratelimit.command("reset")
def reset(ctx: typer.Context, key: str = _KEY) -> None:
    """Delete one client's counter (confirmed, audited; undone on failure)."""
    from opsctl.cache.ratelimit import reset as run

    c = context(ctx)
    result = run(c, key)
    if result.get("dry_run"):
        if c.output.format != "table":
            c.output.data(result)
            return
        plan_table(c, result["plan"])
        _limit(c, result["before"])
        return
    if c.output.format != "table":
        c.output.data(result)
        return
    before = result["before"]
    c.output.success(f"{result['key']}: {before['count']} request(s) in the window forgotten; "
                     f"{result['after']['remaining']} of {before['limit']} remaining now")  # fmt: skip
