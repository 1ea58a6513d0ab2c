"""Acknowledge, update and resolve an incident — at PagerDuty first, then in the store.

Each change is a short run: the incident is read again under the service's incident lock
(planning), so two responders never overwrite each other; the steps are the PagerDuty call
(delivering a pending page first) and the local record.  If PagerDuty cannot be reached the
local record is left as it was (exit 4): the store never claims what PagerDuty does not know.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsctl.errors import RefusedError, UsageError
from opsctl.incidents.engine import Outcome, _run, check_text, event, incident_operation, save
from opsctl.incidents.model import KIND, UPDATE_STATUSES, Incident
from opsctl.incidents.paging import page_step, pagerduty_client, service_in
from opsctl.incidents.policy import due
from opsctl.operations.model import Step

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.integrations.pagerduty import PagerDutyAdapter, PlannedCall
    from opsctl.operations.run import Run


def load(ctx: Context, incident_id: str) -> Incident:
    from opsctl.ids import normalise

    record = ctx.store.get_record(KIND, normalise(incident_id, "INC"))
    if record is None:
        raise UsageError(f"no incident {incident_id!r}", "run 'opsctl incident list --all' to see them")
    return Incident.from_record(record)


Change = Callable[[Incident, Outcome], list[Step]]


def _change(
    ctx: Context, incident_id: str, command: str, args: dict[str, Any], change: Change, check: Any = None
) -> Outcome:
    """Run ``change`` (incident, outcome) -> steps on the incident read again under its lock."""
    first = load(ctx, incident_id)
    service = service_in(ctx, first)
    made: dict[str, Outcome] = {}

    def plan(run: Run) -> list[Step]:
        incident = load(ctx, first.id)
        outcome = made["outcome"] = Outcome(incident, created=False)
        return change(incident, outcome)

    op = incident_operation(command, service, first.env, {"id": first.id, **args}, check)
    return _run(ctx, op, plan, made)


def _remote(
    ctx: Context,
    incident: Incident,
    plan: Callable[[PagerDutyAdapter, str], list[PlannedCall]],
    send: Callable[[PagerDutyAdapter, str], object],
) -> list[Step]:
    """The PagerDuty side of a change (delivering a pending page first); nothing for local incidents."""
    if incident.backend != "pagerduty":
        return []
    client = pagerduty_client(ctx, incident.env)
    steps = [page_step(ctx, incident)] if incident.delivery == "pending" else []
    calls = plan(client, incident.pagerduty_id or "<id from the page>")
    steps.append(
        Step(
            "pagerduty",
            "; ".join(f"{c.method} {c.path}" for c in calls),
            target="PagerDuty",
            detail=calls[0].__dict__ if len(calls) == 1 else {"calls": [c.__dict__ for c in calls]},
            apply=lambda run: send(client, incident.pagerduty_id or ""),
        )
    )
    return steps


def _local(name: str, action: str, apply: Callable[[], None]) -> Step:
    return Step(name, action, target="state store", apply=lambda run: apply())


def acknowledge(ctx: Context, incident_id: str) -> Outcome:
    def change(incident: Incident, outcome: Outcome) -> list[Step]:
        if incident.status == "resolved":
            raise RefusedError(f"{incident.id} is already resolved", "declare a new incident if it is back")
        if incident.status == "acknowledged":
            outcome.notices.append(f"{incident.id} was already acknowledged")
            return []

        def record() -> None:
            incident.status, incident.acknowledged_at = "acknowledged", ctx.clock()
            save(ctx, incident)
            event(ctx, incident, "acknowledged")

        remote = _remote(ctx, incident, lambda c, i: c.plan_acknowledge(i), lambda c, i: c.acknowledge(i))
        return [*remote, _local("record", f"mark {incident.id} acknowledged", record)]

    return _change(ctx, incident_id, "incident ack", {}, change)


def update(ctx: Context, incident_id: str, *, message: str, status: str | None) -> Outcome:
    def check() -> None:
        check_text(message=message)
        if not message.strip():
            raise UsageError(
                "--message is empty", "say what changed, what is being done, and when the next update comes"
            )
        if status is not None and status not in UPDATE_STATUSES:
            raise UsageError(f"--status {status!r} is not a status", f"use one of: {', '.join(UPDATE_STATUSES)}")

    text = f"[{status}] {message}" if status else message

    def send(client: PagerDutyAdapter, pd_id: str) -> None:
        client.status_update(pd_id, text)
        client.add_note(pd_id, text)

    def change(incident: Incident, outcome: Outcome) -> list[Step]:
        if incident.status == "resolved":
            raise RefusedError(f"{incident.id} is resolved", "updates go to open incidents")

        def record() -> None:
            rule = ctx.settings.policy.severities[incident.sev]
            incident.update_status = status or incident.update_status
            incident.next_update_due_at = due(ctx.clock(), rule.update_every)
            save(ctx, incident)
            event(ctx, incident, "status_update", message=message, status=status)

        remote = _remote(ctx, incident, lambda c, i: c.plan_update(i, text), send)
        return [*remote, _local("record", f"record the update on {incident.id}; restart the update timer", record)]

    return _change(ctx, incident_id, "incident update", {"message": message, "status": status}, change, check)


def resolve(ctx: Context, incident_id: str, *, resolution: str | None) -> Outcome:
    def change(incident: Incident, outcome: Outcome) -> list[Step]:
        if incident.status == "resolved":
            outcome.notices.append(f"{incident.id} was already resolved")
            return []

        def record() -> None:
            now = ctx.clock()
            rule = ctx.settings.policy.severities[incident.sev]
            incident.status, incident.resolved_at, incident.resolution = "resolved", now, resolution
            incident.next_update_due_at = None
            incident.postmortem_due_at = due(now, rule.postmortem_within)
            save(ctx, incident)
            event(ctx, incident, "resolved", resolution=resolution)

        remote = _remote(
            ctx, incident, lambda c, i: c.plan_resolve(i, resolution), lambda c, i: c.resolve(i, resolution)
        )
        return [*remote, _local("record", f"mark {incident.id} resolved; start the post-mortem clock", record)]

    return _change(
        ctx,
        incident_id,
        "incident resolve",
        {"resolution": resolution},
        change,
        lambda: check_text(resolution=resolution),
    )
