"""`opsctl audit`, `opsctl locks`, `opsctl unlock`."""

from __future__ import annotations

import typer

from opsctl.commands._common import context
from opsctl.output import Column


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
    app.command("locks")(locks)
    app.command("unlock")(unlock)


def audit(
    ctx: typer.Context,
    service: str | None = typer.Option(None, "--service", "-s", help="Only this service."),
    since: str = typer.Option("24h", "--since", help="How far back: 24h, 7d, or an ISO 8601 time."),
    limit: int = typer.Option(200, "--limit", "-n", min=1, help="At most this many (newest)."),
) -> None:
    """Show the audit log: who did what, when, to which service, and how it ended."""
    from opsctl import audit as engine

    c = context(ctx)
    rows = engine.entries(c, service=service, since=since, limit=limit)
    c.output.data(
        rows,
        columns=[
            Column("at", "WHEN"),
            Column("user", "WHO"),
            Column("command"),
            Column("service"),
            Column("env"),
            Column("outcome", color=engine.outcome_color),
            Column("args", fmt=engine.args_cell),
            Column("message"),
            Column("trace_id", "TRACE", fmt=lambda t: t[:8] if t else "-"),
        ],
    )


def locks(ctx: typer.Context) -> None:
    """Show the locks held now: which operation, by whom, since when, until when."""
    from opsctl import audit as engine

    c = context(ctx)
    c.output.data(
        engine.held_locks(c),
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
    kind: str = typer.Argument(..., help="Operation kind, e.g. incident, deploy, migrate."),
    service: str = typer.Argument(..., help="Service name."),
) -> None:
    """Break a stale lock whose holder is gone (confirmed and audited)."""
    from opsctl import audit as engine

    c = context(ctx)
    c.output.data(engine.break_lock(c, kind, service))
