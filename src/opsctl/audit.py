"""Reading the audit log and managing locks from the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsctl.errors import RefusedError, UsageError
from opsctl.timeutil import parse_instant

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.state.base import LockInfo

_OUTCOME_STYLE = {
    "ok": "green",
    "failed": "red",
    "error": "red",
    "upstream": "red",
    "refused": "yellow",
    "usage": "yellow",
}


def entries(ctx: Context, *, service: str | None, since: str, limit: int) -> list[dict[str, Any]]:
    try:
        start = parse_instant(since, now=ctx.clock())
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    records = ctx.store.list_audit(service=service, since=start, limit=limit)
    return [
        {
            "id": r.id,
            "at": r.at,
            "user": r.user,
            "host": r.host,
            "command": r.command,
            "service": r.service,
            "env": r.env,
            "args": r.args,
            "outcome": r.outcome,
            "dry_run": r.dry_run,
            "exit_code": r.exit_code,
            "message": r.message,
            "trace_id": r.trace_id,
        }
        for r in records
    ]


def outcome_color(value: Any) -> str | None:
    return _OUTCOME_STYLE.get(str(value))


def args_cell(args: Any) -> str:
    if not isinstance(args, dict) or not args:
        return "-"
    return " ".join(f"{k}={v}" for k, v in args.items())


def lock_view(info: LockInfo) -> dict[str, Any]:
    return {
        "key": info.key,
        "user": info.user,
        "host": info.host,
        "pid": info.pid,
        "command": info.command,
        "acquired_at": info.acquired_at,
        "expires_at": info.expires_at,
    }


def held_locks(ctx: Context) -> list[dict[str, Any]]:
    return [lock_view(i) for i in ctx.locks.list(ctx.clock())]


def break_lock(ctx: Context, kind: str, service_name: str) -> dict[str, Any]:
    """Break the lock of ``kind`` on a service (always confirmed, audited whatever happens)."""
    from opsctl.operations import mutation
    from opsctl.state.locks import lock_key

    service = ctx.service(service_name)
    key = lock_key(kind, service.name, ctx.env)
    with mutation(ctx, "unlock", service=service, args={"kind": kind, "service": service_name}) as op:
        holder = ctx.locks.holder(key, ctx.clock())
        if holder is None:
            raise RefusedError(f"{key} is not locked", "nothing to do")
        ctx.confirm(
            f"break {key} held by {holder.user}@{holder.host} (pid {holder.pid}) since {holder.acquired_at:%Y-%m-%d %H:%M:%S %Z}",
            always=True,
        )
        broken = False
        if not ctx.dry_run:
            broken = ctx.locks.break_(key) is not None
            op.note(f"broke lock held by {holder.user}@{holder.host} pid {holder.pid}")
        return {"key": key, "broken": broken, "holder": lock_view(holder), "dry_run": ctx.dry_run}
