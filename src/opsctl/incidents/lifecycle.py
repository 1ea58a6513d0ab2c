"""Acknowledge, update and resolve an incident — at PagerDuty first, then in the store.

If PagerDuty cannot be reached the local record is left as it was (exit 4), so
the store never claims something PagerDuty does not know.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsctl.errors import RefusedError, UsageError
from opsctl.incidents.engine import Outcome, deliver, event, pagerduty_client, save
from opsctl.incidents.model import KIND, UPDATE_STATUSES, Incident
from opsctl.incidents.policy import due
from opsctl.operations import mutation

if TYPE_CHECKING:
    from opsctl.context import Context


def load(ctx: Context, incident_id: str) -> Incident:
    record = ctx.store.get_record(KIND, incident_id.strip().upper())
    if record is None:
        raise UsageError(f"no incident {incident_id!r}", "run 'opsctl incident list --all' to see them")
    return Incident.from_record(record)


def _at_pagerduty(ctx: Context, incident: Incident) -> bool:
    """Whether this change must go to PagerDuty (delivering a pending page first)."""
    if incident.backend != "pagerduty":
        return False
    if incident.delivery == "pending" and not ctx.dry_run:
        deliver(ctx, incident)
    return True


def acknowledge(ctx: Context, incident_id: str) -> Outcome:
    incident = load(ctx, incident_id)
    service = ctx.service(incident.service)
    with mutation(
        ctx, "incident ack", service=service, args={"id": incident.id}, lock="incident", env=incident.env
    ) as op:
        if incident.status == "resolved":
            raise RefusedError(f"{incident.id} is already resolved", "declare a new incident if it is back")
        if incident.status == "acknowledged":
            op.note("already acknowledged")
            return Outcome(incident, created=False, notices=[f"{incident.id} was already acknowledged"])
        outcome = Outcome(incident, created=False)
        if _at_pagerduty(ctx, incident):
            client = pagerduty_client(ctx)
            if ctx.dry_run:
                outcome.planned = client.plan_acknowledge(incident.pagerduty_id or "<pending>")
            else:
                client.acknowledge(incident.pagerduty_id or "")
        if not ctx.dry_run:
            incident.status, incident.acknowledged_at = "acknowledged", ctx.clock()
            save(ctx, incident)
            event(ctx, incident, "acknowledged")
        return outcome


def update(ctx: Context, incident_id: str, *, message: str, status: str | None) -> Outcome:
    if not message.strip():
        raise UsageError("--message is empty", "say what changed, what is being done, and when the next update comes")
    if status is not None and status not in UPDATE_STATUSES:
        raise UsageError(f"--status {status!r} is not a status", f"use one of: {', '.join(UPDATE_STATUSES)}")
    incident = load(ctx, incident_id)
    service = ctx.service(incident.service)
    args = {"id": incident.id, "message": message, "status": status}
    with mutation(ctx, "incident update", service=service, args=args, lock="incident", env=incident.env):
        if incident.status == "resolved":
            raise RefusedError(f"{incident.id} is resolved", "updates go to open incidents")
        outcome = Outcome(incident, created=False)
        text = f"[{status}] {message}" if status else message
        if _at_pagerduty(ctx, incident):
            client = pagerduty_client(ctx)
            if ctx.dry_run:
                outcome.planned = client.plan_update(incident.pagerduty_id or "<pending>", text)
            else:
                client.status_update(incident.pagerduty_id or "", text)
                client.add_note(incident.pagerduty_id or "", text)
        if not ctx.dry_run:
            rule = ctx.settings.policy.severities[incident.sev]
            incident.update_status = status or incident.update_status
            incident.next_update_due_at = due(ctx.clock(), rule.update_every)
            save(ctx, incident)
            event(ctx, incident, "status_update", message=message, status=status)
        return outcome


def resolve(ctx: Context, incident_id: str, *, resolution: str | None) -> Outcome:
    incident = load(ctx, incident_id)
    service = ctx.service(incident.service)
    args = {"id": incident.id, "resolution": resolution}
    with mutation(ctx, "incident resolve", service=service, args=args, lock="incident", env=incident.env) as op:
        if incident.status == "resolved":
            op.note("already resolved")
            return Outcome(incident, created=False, notices=[f"{incident.id} was already resolved"])
        outcome = Outcome(incident, created=False)
        if _at_pagerduty(ctx, incident):
            client = pagerduty_client(ctx)
            if ctx.dry_run:
                outcome.planned = client.plan_resolve(incident.pagerduty_id or "<pending>", resolution)
            else:
                client.resolve(incident.pagerduty_id or "", resolution)
        if not ctx.dry_run:
            now = ctx.clock()
            rule = ctx.settings.policy.severities[incident.sev]
            incident.status, incident.resolved_at, incident.resolution = "resolved", now, resolution
            incident.next_update_due_at = None
            incident.postmortem_due_at = due(now, rule.postmortem_within)
            save(ctx, incident)
            event(ctx, incident, "resolved", resolution=resolution)
        return outcome
