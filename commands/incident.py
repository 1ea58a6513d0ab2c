"""`opsctl incident declare|list|show|ack|update|resolve|postmortem|watch|sync`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from opsctl.commands._common import context
from opsctl.output import Column

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.incidents.engine import Outcome

app = typer.Typer(no_args_is_help=True)

_COLUMNS = [
    Column("id", style="bold"),
    Column("service"),
    Column("sev", "SEV", fmt=lambda v: f"SEV-{v}"),
    Column("status", color=lambda v: {"triggered": "red", "acknowledged": "yellow", "resolved": "green"}.get(v)),
    Column("title"),
    Column("ack_in", "ACK DUE", color=lambda v: "bold red" if v and v.startswith("overdue") else None),
    Column("update_in", "UPDATE DUE", color=lambda v: "bold red" if v and v.startswith("overdue") else None),
    Column("paged", fmt=lambda v: "yes" if v else "NO"),
    Column("backend"),
]


def render(c: Context, outcome: Outcome) -> None:
    """The incident object on stdout; the plan, notices, warnings and checklist on stderr."""
    from opsctl.incidents.views import checklist, summary

    incident = outcome.incident
    for notice in outcome.notices:
        c.output.warn(notice)
    if c.dry_run:
        c.output.info("dry run: nothing recorded, nobody paged")
        for call in outcome.planned:
            c.output.info(f"would call PagerDuty: {call.method} {call.path} {call.body or ''}")
    if not incident.paged and incident.is_open:
        c.output.warn(f"nobody was paged for {incident.id}: {incident.page_reason}")
    if c.output.format != "table":
        data: dict[str, Any] = incident.to_dict()
        if c.dry_run:
            data["dry_run"] = True
            data["planned_calls"] = [{"method": p.method, "path": p.path, "body": p.body} for p in outcome.planned]
        c.output.data(data)
        return
    c.output.data(summary(incident, c.clock()))
    if outcome.created:
        c.output.info(f"Response checklist (SEV-{incident.sev}):")
        for step in checklist(incident.sev):
            c.output.info(f"  [ ] {step}")


def _complete_service(incomplete: str) -> list[str]:
    from opsctl.context import Context

    try:
        return [s["name"] for s in Context().snapshot["services"] if s["name"].startswith(incomplete)]
    except Exception:
        return []


@app.command("declare")
def declare(
    ctx: typer.Context,
    service: str = typer.Argument(..., help="The affected service.", autocompletion=_complete_service),
    sev: int = typer.Option(
        ..., "--sev", "-s", min=1, max=4, help="1 outage/data loss/breach, 2 major, 3 minor, 4 cosmetic."
    ),
    title: str = typer.Option(..., "--title", "-t", help="What is broken, in one line."),
    details: str | None = typer.Option(None, "--details", "-d", help="More context for the responders."),
    commander: str | None = typer.Option(None, "--commander", help="The incident commander."),
) -> None:
    """Declare an incident: page by severity policy (idempotent: the same declaration pages once)."""
    from opsctl.incidents import engine

    c = context(ctx)
    try:
        render(c, engine.declare(c, service, sev=sev, title=title, details=details, commander=commander))
    except engine.NotPagedError as exc:
        from opsctl.incidents.engine import Outcome

        render(c, Outcome(exc.incident))
        raise


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Include resolved incidents."),
    service: str | None = typer.Option(None, "--service", help="Only this service."),
) -> None:
    """Open incidents with their acknowledgement and update timers (overdue ones stand out)."""
    from opsctl.incidents.views import list_incidents

    c = context(ctx)
    c.output.data(list_incidents(c, include_resolved=all_, service=service), columns=_COLUMNS)


@app.command("show")
def show(ctx: typer.Context, incident_id: str = typer.Argument(..., metavar="ID")) -> None:
    """One incident with its timeline."""
    from opsctl.incidents.views import show as show_incident

    c = context(ctx)
    data = show_incident(c, incident_id)
    if c.output.format != "table":
        c.output.data(data)
        return
    timeline = data.pop("timeline")
    c.output.data(data)
    c.output.data(
        timeline, columns=[Column("at", "WHEN"), Column("author", "WHO"), Column("event"), Column("data", "DETAILS")]
    )


@app.command("ack")
def ack(ctx: typer.Context, incident_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Acknowledge: you are on it (stops the escalation)."""
    from opsctl.incidents import lifecycle

    c = context(ctx)
    render(c, lifecycle.acknowledge(c, incident_id))


@app.command("update")
def update(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID"),
    message: str = typer.Option(..., "--message", "-m", help="What changed, what is being done, next update when."),
    status: str | None = typer.Option(None, "--status", help="investigating, identified or monitoring."),
) -> None:
    """Post a status update (PagerDuty status update + note); resets the update timer."""
    from opsctl.incidents import lifecycle

    c = context(ctx)
    render(c, lifecycle.update(c, incident_id, message=message, status=status))


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID"),
    resolution: str | None = typer.Option(None, "--resolution", "-r", help="How it was fixed."),
) -> None:
    """Resolve: customer impact has ended (starts the post-mortem clock)."""
    from opsctl.incidents import lifecycle

    c = context(ctx)
    render(c, lifecycle.resolve(c, incident_id, resolution=resolution))


@app.command("postmortem")
def postmortem(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID"),
    out: Path | None = typer.Option(None, "--out", help="Write the draft to this file instead of stdout."),
) -> None:
    """A Markdown post-mortem draft: summary, impact, timeline, TTA/TTR, action items."""
    from opsctl.incidents.views import postmortem as draft

    c = context(ctx)
    text = draft(c, incident_id)
    if out is None:
        c.output.text(text)
        return
    if out.exists() and not c.yes:
        from opsctl.errors import RefusedError

        raise RefusedError(f"{out} exists", "use --yes to overwrite it")
    out.write_text(text, encoding="utf-8")
    c.output.success(f"wrote {out}")


@app.command("sync")
def sync(ctx: typer.Context) -> None:
    """Deliver incidents whose page did not go out because PagerDuty was unreachable."""
    from opsctl.incidents import engine

    c = context(ctx)
    outcomes = engine.sync(c)
    c.output.data([o.incident.to_dict() for o in outcomes], columns=[*_COLUMNS[:5], _COLUMNS[7]])


@app.command("watch")
def watch(
    ctx: typer.Context,
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="Seconds between refreshes."),
    service: str | None = typer.Option(None, "--service", help="Only this service."),
) -> None:
    """A live board of open incidents with ack and update countdowns (Ctrl-C to leave)."""
    from opsctl.incidents.board import run_board

    c = context(ctx)
    run_board(c, interval=interval, service=service, columns=_COLUMNS)
