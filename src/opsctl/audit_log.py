"""Reading the audit log: who did what, when, to which service, and how it ended."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsctl.errors import UsageError
from opsctl.timeutil import parse_instant

if TYPE_CHECKING:
    from opsctl.context import Context


def entries(ctx: Context, *, service: str | None, since: str, limit: int) -> list[dict[str, Any]]:
    """Records since ``since`` (any form the time parser takes), oldest first; only the chosen
    environment's when ``--env`` is given."""
    try:
        start = parse_instant(since, now=ctx.clock())
    except (ValueError, OverflowError) as exc:
        raise UsageError(f"--since: {exc}") from None
    if service is not None:
        service = ctx.service(service).name
    env = ctx.env if ctx.env_name is not None else None
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
            "run_id": r.run_id,
            "trace_id": r.trace_id,
        }
        for r in records
        if env is None or r.env == env
    ]
