"""`opsctl audit`, `opsctl locks`, `opsctl unlock`."""

from __future__ import annotations

import typer

from opsctl.commands._common import context
from opsctl.output import Column

_OUTCOME_COLOURS = {
    "ok": "green",
    "failed": "red",
    "error": "red",
    "upstream": "red",
    "rolled_back": "yellow",
    "interrupted": "yellow",
    "refused": "yellow",
    "usage": "yellow",
    "started": "cyan",
    "takeover": "magenta",
}


def _args_cell(args: object) -> str:
    if not isinstance(args, dict) or not args:
        return "-"
    return " ".join(f"{k}={v}" for k, v in args.items())


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
    app.command("locks")(locks)
    app.command("unlock")(unlock)


def audit(
    ctx: typer.Context,
    service: str | None = typer.Option(None, "--service", help="Only this service.", metavar="SERVICE"),
    since: str = typer.Option(
        "24h", "--since", metavar="TIME", help="How far back: 24h, 7d, 2h ago, an ISO 8601 time with a zone."
    ),
    limit: int = typer.Option(
        200, "--limit", "-n", min=1, max=100_000, metavar="N", help="At most this many (newest)."
    ),
) -> None:
    """Show the audit log: who did what, when, to which service, and how it ended."""
    from opsctl.audit_log import entries

    c = context(ctx)
    rows = entries(c, service=service, since=since, limit=limit)
    c.output.data(
        rows,
        columns=[
            Column("at", "WHEN"),
            Column("user", "WHO"),
            Column("command"),
            Column("service"),
            Column("env"),
            Column("outcome", color=lambda v: _OUTCOME_COLOURS.get(str(v))),
            Column("dry_run", "DRY RUN", fmt=lambda v: "DRY-RUN" if v else "-"),
            Column("run_id", "RUN"),
            Column("trace_id", "TRACE", fmt=lambda t: t[:8] if t else "-"),
            Column("args", fmt=_args_cell),
            Column("message"),
        ],
    )


def locks(ctx: typer.Context) -> None:
    """Show the locks held now: which operation, by whom, since when, until when."""
    from opsctl.lock_admin import held_locks

    c = context(ctx)
    c.output.data(
        held_locks(c),
        columns=[
            Column("key"),
            Column("user"),
            Column("host"),
            Column("pid"),
            Column("command"),
            Column("acquired_at", "SINCE"),
            Column("expires_at", "EXPIRES"),
        ],
    )


def unlock(
    ctx: typer.Context,
    kind: str = typer.Argument(..., metavar="KIND", help="Operation kind, e.g. incident, deploy, migrate."),
    service: str = typer.Argument(..., metavar="SERVICE", help="Service name."),
    force: bool = typer.Option(False, "--force", help="Break it even though its holder may still be alive."),
) -> None:
    """Break a stale lock whose holder is gone (refused while it may be alive; confirmed, audited)."""
    from opsctl.lock_admin import break_lock

    c = context(ctx)
    c.output.data(break_lock(c, kind, service, force=force))
