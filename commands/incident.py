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

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)


def _due(value: str | None) -> str:
    return value.replace(" ", "-") if value else "-"  # "overdue-5m": one field per column in pipes


def _overdue(value: str | None) -> str | None:
    return "bold red" if value and value.startswith("overdue") else None


_COLUMNS = [
    Column("id", style="bold"),
    Column("service"),
    Column("env"),
    Column("sev", "SEV", fmt=lambda v: f"SEV-{v}"),
    Column("status", color=lambda v: {"triggered": "red", "acknowledged": "yellow", "resolved": "green"}.get(v)),
    Column("ack_in", "ACK DUE", fmt=_due, color=_overdue),
    Column("update_in", "UPDATE DUE", fmt=_due, color=_overdue),
    Column("paged", fmt=lambda v: "yes" if v else "NO"),
    Column("backend"),
    Column("title"),  # free text last: awk '{print $1, $4}' still works
]


_CHANGES = [
    Column("at", "WHEN"),
    Column("kind", "CHANGE"),
    Column("image"),
    Column("state"),
    Column("by", "WHO"),
    Column("rollback", "ROLL BACK WITH"),
]


def render(c: Context, outcome: Outcome) -> None:
    """The incident object on stdout (the plan, for a dry run); notices and the checklist on stderr."""
    from opsctl.incidents.engine import warnings_of
    from opsctl.incidents.views import checklist, summary

    incident = outcome.incident
    for notice in outcome.notices:
        c.output.warn(notice)
    for warning in warnings_of(outcome):
        c.output.warn(f"{incident.id}: {warning}")
    if c.dry_run:
        render_plan(c, outcome)
        return
    if outcome.not_paged:
        c.output.warn(f"NOBODY WAS PAGED for {incident.id}: {outcome.not_paged}; page the on-call yourself if needed")
    elif outcome.created and not incident.paged and incident.is_open:
        c.output.info(f"{incident.id} not paged: {incident.page_reason}")
    if c.output.format != "table":
        data = incident.to_dict()
        if outcome.created:
            from opsctl.incidents.views import changes

            data["changes"] = changes(c, incident)
        c.output.data(data)
        return
    c.output.data(summary(incident, c.clock()))
    if outcome.created:
        _recent_changes(c, incident)
        c.output.info(f"Response checklist (SEV-{incident.sev}):")
        for step in checklist(incident.sev, incident.id):
            c.output.info(f"  [ ] {step}")


def _recent_changes(c: Context, incident: Any) -> None:
    """Mitigate first: the service's changes of the last 24 h, each with its rollback command."""
    from opsctl.incidents.views import changes

    recent = changes(c, incident)
    if not recent:
        return
    c.output.warn(f"{incident.service} changed in the last 24 h (mitigate first: roll back?):")
    for change in recent:
        undo = f" — roll back: {change['rollback']}" if change.get("rollback") else ""
        c.output.info(
            f"  {change['at']} {change['kind']} {change.get('image') or ''} ({change['state']}) by {change['by']}{undo}"
        )


def render_plan(c: Context, outcome: Outcome) -> None:
    """A dry run shows what would happen — never an incident that looks real."""
    plan = outcome.run.plan if outcome.run is not None else []
    c.output.info("dry run: nothing recorded, nobody paged" if plan else "dry run: nothing would change")
    if c.output.format != "table":
        data: dict[str, Any] = outcome.incident.to_dict()
        if outcome.created:
            data["id"] = None  # no incident exists: a dry run must never look real
        data.update({"dry_run": True, "plan": plan, "planned_calls": outcome.planned_calls})
        c.output.data(data)
        return
    c.output.data(
        [{"n": i + 1, **step} for i, step in enumerate(plan)],
        columns=[Column("n", "#"), Column("name", "STEP"), Column("action"), Column("target"), Column("undo")],
    )


def _complete_service(incomplete: str) -> list[str]:
    from opsctl.context import Context

    try:
        return [s["name"] for s in Context().snapshot["services"] if s["name"].startswith(incomplete)]
    except Exception:
        return []


@app.command("declare")
def declare(
    ctx: typer.Context,
    service: str = typer.Argument(
        ..., metavar="SERVICE", help="The affected service.", autocompletion=_complete_service
    ),
    sev: int = typer.Option(
        ..., "--sev", "-s", min=1, max=4, metavar="1-4", help="1 outage/data loss/breach, 2 major, 3 minor, 4 cosmetic."
    ),
    title: str = typer.Option(..., "--title", "-t", metavar="TEXT", help="What is broken, in one line."),
    details: str | None = typer.Option(
        None, "--details", "-d", metavar="TEXT", help="More context for the responders."
    ),
    commander: str | None = typer.Option(None, "--commander", metavar="USER", help="The incident commander."),
) -> None:
    """Declare an incident: page by severity policy (idempotent: the same declaration pages once)."""
    from opsctl.incidents import engine

    c = context(ctx)
    try:
        render(c, engine.declare(c, service, sev=sev, title=title, details=details, commander=commander))
    except engine.NotPagedError as exc:
        from opsctl.incidents.views import summary

        if c.output.format != "table":  # scripts still get the incident that was recorded
            c.output.data(exc.incident.to_dict())
        else:
            c.output.data(summary(exc.incident, c.clock()))
        raise


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Include resolved incidents."),
    service: str | None = typer.Option(None, "--service", help="Only this service.", metavar="SERVICE"),
) -> None:
    """Open incidents, most urgent first, with ack and update timers (only --env's when given)."""
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
    recent = data.pop("changes")
    c.output.data(data)
    c.output.data(
        timeline, columns=[Column("at", "WHEN"), Column("author", "WHO"), Column("event"), Column("data", "DETAILS")]
    )
    if recent:
        c.output.text("Changes to the service in the 24 h before (and since):")
        c.output.data(recent, columns=_CHANGES)


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
    message: str = typer.Option(
        ..., "--message", "-m", metavar="TEXT", help="What changed, what is being done, next update when."
    ),
    status: str | None = typer.Option(
        None, "--status", metavar="STATUS", help="investigating, identified or monitoring."
    ),
) -> None:
    """Post a status update (PagerDuty status update + note); resets the update timer."""
    from opsctl.incidents import lifecycle

    c = context(ctx)
    render(c, lifecycle.update(c, incident_id, message=message, status=status))


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID"),
    resolution: str | None = typer.Option(None, "--resolution", "-r", metavar="TEXT", help="How it was fixed."),
) -> None:
    """Resolve: customer impact has ended (starts the post-mortem clock)."""
    from opsctl.incidents import lifecycle

    c = context(ctx)
    render(c, lifecycle.resolve(c, incident_id, resolution=resolution))


@app.command("postmortem")
def postmortem(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID"),
    out: Path | None = typer.Option(
        None, "--out", metavar="FILE", help="Write the draft to this file instead of stdout (--yes to replace one)."
    ),
) -> None:
    """A Markdown post-mortem draft: summary, impact, timeline, TTA/TTR, action items."""
    from opsctl.incidents.views import postmortem as draft

    c = context(ctx)
    text = draft(c, incident_id)
    if out is None:
        c.output.text(text)
        return
    from opsctl.fsutil import write_document
    from opsctl.output import printable
    from opsctl.redact import redact

    written = write_document(out, printable(redact(text), multiline=True), replace=c.yes)
    c.output.success(f"wrote {written}")


@app.command("sync")
def sync(ctx: typer.Context) -> None:
    """Deliver incidents whose page did not go out because PagerDuty was unreachable."""
    from opsctl.incidents import engine

    c = context(ctx)
    outcomes = engine.sync(c)
    c.output.data([o.incident.to_dict() for o in outcomes], columns=[*_COLUMNS[:5], _COLUMNS[7], _COLUMNS[9]])


@app.command("watch")
def watch(
    ctx: typer.Context,
    interval: float = typer.Option(2.0, "--interval", min=0.2, max=3600, metavar="SECONDS", help="Between refreshes."),
    service: str | None = typer.Option(None, "--service", help="Only this service.", metavar="SERVICE"),
    once: bool = typer.Option(False, "--once", help="One snapshot, then exit."),
) -> None:
    """A live board of open incidents (Ctrl-C to leave); in a pipe or with -o json, one snapshot
    per interval (JSON: one document per line)."""
    from opsctl.incidents import board

    c = context(ctx)
    frames = board.snapshots(c, interval=interval, service=service, limit=1 if once else None)
    try:
        if c.output.format == "table" and c.output.stdout_is_terminal() and not once:
            from opsctl.display import live_frames

            live_frames(c.output.out, (c.output.table(s["incidents"], _COLUMNS, title=board.title(s)) for s in frames))
        for snap in frames:
            if c.output.format == "json":
                c.output.json_line(snap)
            elif c.output.format == "yaml":
                c.output.data(snap)
            else:
                c.output.text(board.title(snap))
                c.output.data(snap["incidents"], columns=_COLUMNS)
    except KeyboardInterrupt:
        c.output.info("left the board")
