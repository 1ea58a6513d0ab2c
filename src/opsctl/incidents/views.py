"""Read-only views of incidents: list with timers, show with timeline, post-mortem draft."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsctl.incidents.lifecycle import load
from opsctl.incidents.model import KIND, OPEN, Incident
from opsctl.incidents.policy import CHECKLISTS, overdue
from opsctl.timeutil import format_duration, isoformat

if TYPE_CHECKING:
    from opsctl.context import Context


def with_timers(incident: Incident, now: datetime) -> dict[str, Any]:
    """The incident object plus how long until (or since) each deadline."""
    data = incident.to_dict()
    ack_pending = incident.status == "triggered"
    data["ack_overdue"] = ack_pending and overdue(incident.ack_due_at, now)
    data["update_overdue"] = incident.is_open and overdue(incident.next_update_due_at, now)
    data["ack_in"] = _until(incident.ack_due_at, now) if ack_pending else None
    data["update_in"] = _until(incident.next_update_due_at, now) if incident.is_open else None
    return data


def summary(incident: Incident, now: datetime) -> dict[str, Any]:
    """The fields a person needs at a glance (the table view of one incident)."""
    timers = with_timers(incident, now)
    return {
        "id": incident.id,
        "service": incident.service,
        "env": incident.env,
        "severity": f"SEV-{incident.sev} ("
        + ("a ticket, no page" if incident.urgency == "none" else f"{incident.urgency} urgency")
        + ")",
        "title": incident.title,
        "status": incident.status + (f" / {incident.update_status}" if incident.update_status else ""),
        "paged": "yes" if incident.paged else "NO",
        "backend": incident.backend + (" (delivery pending)" if incident.delivery == "pending" else ""),
        "declared": f"{isoformat(incident.declared_at)} by {incident.declared_by}",
        "commander": incident.commander or "-",
        "ack due": timers["ack_in"] or isoformat(incident.acknowledged_at) or "-",
        "next update due": timers["update_in"] or "-",
        "post-mortem due": isoformat(incident.postmortem_due_at) or "-",
        "pagerduty": incident.html_url or "-",
    }


def _until(deadline: datetime | None, now: datetime) -> str | None:
    if deadline is None:
        return None
    left = deadline - now
    if left < timedelta(0):
        return f"overdue {format_duration(timedelta(seconds=int(-left.total_seconds())))}"
    return format_duration(timedelta(seconds=int(left.total_seconds())))


def list_incidents(ctx: Context, *, include_resolved: bool, service: str | None) -> list[dict[str, Any]]:
    """Incidents, most urgent first (open before resolved, SEV-1 before SEV-4, oldest first);
    only those of the environment when one is chosen with --env."""
    if service is not None:
        service = ctx.service(service).name  # unknown service: exit 2 with suggestions
    env = ctx.env if ctx.env_name is not None else None
    records = ctx.store.find_records(KIND, service=service, statuses=None if include_resolved else OPEN)
    now = ctx.clock()
    incidents = [Incident.from_record(r) for r in records]
    chosen = [i for i in incidents if env is None or i.env == env]
    chosen.sort(key=lambda i: (not i.is_open, i.sev, i.declared_at))
    return [with_timers(i, now) for i in chosen]


def timeline(ctx: Context, incident: Incident) -> list[dict[str, Any]]:
    rows = []
    for e in ctx.store.list_events(KIND, incident.id):
        data = {k: v for k, v in e.data.items() if v is not None}
        rows.append({"at": isoformat(e.at), "author": e.author, "event": e.type, **({"data": data} if data else {})})
    return rows


def show(ctx: Context, incident_id: str) -> dict[str, Any]:
    incident = load(ctx, incident_id)
    data = with_timers(incident, ctx.clock())
    data["timeline"] = timeline(ctx, incident)
    data["changes"] = changes(ctx, incident)
    return data


def changes(ctx: Context, incident: Incident) -> list[dict[str, Any]]:
    """The service's changes (deploys, rollbacks, later migrations) in the 24 h before the
    incident was declared — and since — with the command that rolls each back."""
    from opsctl.deploy.status import changes as recent

    now = ctx.clock()
    return recent(ctx, incident.service, incident.env, since=now - incident.declared_at + timedelta(hours=24))


def checklist(sev: int, incident_id: str) -> list[str]:
    return [step.format(id=incident_id) for step in CHECKLISTS.get(sev, [])]


def postmortem(ctx: Context, incident_id: str) -> str:
    """A Markdown post-mortem draft built from the recorded events."""
    incident = load(ctx, incident_id)
    events = timeline(ctx, incident)
    tier = ctx.settings.service(incident.service)
    tier_text = f"tier {tier.tier}" if tier else "unknown tier"
    tta = _span(incident.declared_at, incident.acknowledged_at)
    ttr = _span(incident.declared_at, incident.resolved_at)
    from opsctl.output import printable

    lines = [
        f"# Post-mortem: {printable(incident.title)}",
        "",
        f"- **Incident:** {incident.id} — SEV-{incident.sev}, {incident.service} ({tier_text}), {incident.env}",
        f"- **Status:** {incident.status}" + (f" — {incident.resolution}" if incident.resolution else ""),
        f"- **Commander:** {incident.commander or incident.declared_by}",
        f"- **Declared:** {isoformat(incident.declared_at)} by {incident.declared_by}",
        f"- **Time to acknowledge:** {tta}",
        f"- **Time to resolve:** {ttr}",
        f"- **Post-mortem due:** {isoformat(incident.postmortem_due_at) or 'no deadline for this severity'}",
    ]
    if incident.html_url:
        lines.append(f"- **PagerDuty:** {incident.html_url}")
    lines += [
        "",
        "## Summary",
        "",
        incident.details or "_What happened, in two or three sentences._",
        "",
        "## Impact",
        "",
        "_Who was affected, how, and for how long; SLA/SLO budget consumed._",
        "",
        "## Timeline (UTC)",
        "",
        "| time | who | event |",
        "|---|---|---|",
    ]
    rows = [(entry["at"], entry["author"], _describe(entry)) for entry in events]
    for change in changes(ctx, incident):
        what = f"change: {change['kind']} {change.get('image') or ''} ({change['state']}, run {change['run_id']})"
        rows.append((change["at"], change["by"], what.replace("|", "\\|")))
    for at, who, what in sorted(rows, key=lambda row: str(row[0])):
        lines.append(f"| {at} | {who} | {what} |")
    lines += [
        "",
        "## Root cause",
        "",
        "_Why it happened; what made it possible (five whys)._",
        "",
        "## What went well / what went badly",
        "",
        "- ",
        "",
        "## Action items",
        "",
        "| action | owner | due |",
        "|---|---|---|",
        "|  |  |  |",
        "",
    ]
    return "\n".join(lines)


def _span(start: datetime, end: datetime | None) -> str:
    if end is None:
        return "—"
    return format_duration(timedelta(seconds=int((end - start).total_seconds())))


def _describe(entry: dict[str, Any]) -> str:
    return _event_text(entry).replace("|", "\\|").replace("\n", " ")


def _event_text(entry: dict[str, Any]) -> str:
    data = entry.get("data") or {}
    kind = str(entry["event"])
    if kind == "declared":
        return f"declared SEV-{data.get('sev')}: {data.get('title')}"
    if kind == "paged":
        return f"paged via PagerDuty ({data.get('urgency')} urgency, {data.get('pagerduty_id')})"
    if kind == "recorded":
        return f"recorded, not paged: {data.get('reason')}"
    if kind == "page_failed":
        return f"page FAILED: {data.get('error')}"
    if kind == "status_update":
        status = f"[{data['status']}] " if data.get("status") else ""
        return f"status update: {status}{data.get('message')}"
    if kind == "resolved":
        return "resolved" + (f": {data['resolution']}" if data.get("resolution") else "")
    return kind.replace("_", " ")
