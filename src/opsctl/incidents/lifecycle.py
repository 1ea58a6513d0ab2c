"""Acknowledge, update and resolve an incident — at PagerDuty first, then in the store.

Each change re-reads the incident under the service's incident lock, so two
responders never overwrite each other.  If PagerDuty cannot be reached the local
record is left as it was (exit 4): the store never claims what PagerDuty does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opsctl.errors import RefusedError, UsageError
from opsctl.incidents.engine import Outcome, deliver, event, pagerduty_client, save
from opsctl.incidents.model import KIND, UPDATE_STATUSES, Incident
from opsctl.incidents.policy import due
from opsctl.operations import Operation, mutation

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.integrations.pagerduty import PagerDutyAdapter, PlannedCall


def load(ctx: Context, incident_id: str) -> Incident:
    record = ctx.store.get_record(KIND, incident_id.strip().upper())
    if record is None:
        raise UsageError(f"no incident {incident_id!r}", "run 'opsctl incident list --all' to see them")
    return Incident.from_record(record)


@contextmanager
def _changing(
    ctx: Context, incident_id: str, command: str, args: dict[str, Any]
) -> Iterator[tuple[Incident, Operation]]:
    """The incident, read again under its lock, inside an audited operation."""
    first = load(ctx, incident_id)
    service = ctx.service(first.service)
    args = {"id": first.id, **args}
    with mutation(ctx, command, service=service, args=args, lock="incident", env=first.env) as op:
        yield load(ctx, first.id), op


def _remote(
    ctx: Context,
    incident: Incident,
    outcome: Outcome,
    plan: Callable[[PagerDutyAdapter, str], list[PlannedCall]],
    send: Callable[[PagerDutyAdapter, str], object],
) -> None:
    """Make the change at PagerDuty (delivering a pending page first); in a dry run, only plan it."""
    if incident.backend != "pagerduty":
        return
    if incident.delivery == "pending" and not ctx.dry_run:
        deliver(ctx, incident)
    client = pagerduty_client(ctx)
    if ctx.dry_run:
        outcome.planned = plan(client, incident.pagerduty_id or "<pending>")
    else:
        send(client, incident.pagerduty_id or "")


def acknowledge(ctx: Context, incident_id: str) -> Outcome:
    with _changing(ctx, incident_id, "incident ack", {}) as (incident, op):
        if incident.status == "resolved":
            raise RefusedError(f"{incident.id} is already resolved", "declare a new incident if it is back")
        if incident.status == "acknowledged":
            op.note("already acknowledged")
            return Outcome(incident, created=False, notices=[f"{incident.id} was already acknowledged"])
        outcome = Outcome(incident, created=False)
        _remote(ctx, incident, outcome, lambda c, i: c.plan_acknowledge(i), lambda c, i: c.acknowledge(i))
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
    text = f"[{status}] {message}" if status else message

    def send(client: PagerDutyAdapter, pd_id: str) -> None:
        client.status_update(pd_id, text)
        client.add_note(pd_id, text)

    with _changing(ctx, incident_id, "incident update", {"message": message, "status": status}) as (incident, _):
        if incident.status == "resolved":
            raise RefusedError(f"{incident.id} is resolved", "updates go to open incidents")
        outcome = Outcome(incident, created=False)
        _remote(ctx, incident, outcome, lambda c, i: c.plan_update(i, text), send)
        if not ctx.dry_run:
            rule = ctx.settings.policy.severities[incident.sev]
            incident.update_status = status or incident.update_status
            incident.next_update_due_at = due(ctx.clock(), rule.update_every)
            save(ctx, incident)
            event(ctx, incident, "status_update", message=message, status=status)
        return outcome


def resolve(ctx: Context, incident_id: str, *, resolution: str | None) -> Outcome:
    with _changing(ctx, incident_id, "incident resolve", {"resolution": resolution}) as (incident, op):
        if incident.status == "resolved":
            op.note("already resolved")
            return Outcome(incident, created=False, notices=[f"{incident.id} was already resolved"])
        outcome = Outcome(incident, created=False)
        _remote(
            ctx, incident, outcome, lambda c, i: c.plan_resolve(i, resolution), lambda c, i: c.resolve(i, resolution)
        )
        if not ctx.dry_run:
            now = ctx.clock()
            rule = ctx.settings.policy.severities[incident.sev]
            incident.status, incident.resolved_at, incident.resolution = "resolved", now, resolution
            incident.next_update_due_at = None
            incident.postmortem_due_at = due(now, rule.postmortem_within)
            save(ctx, incident)
            event(ctx, incident, "resolved", resolution=resolution)
        return outcome
