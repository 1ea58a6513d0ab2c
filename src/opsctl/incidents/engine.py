"""Declaring incidents and delivering them to PagerDuty.

The record is written to the state store BEFORE anything is sent, keyed by the
incident key, so a declaration that died half-way, or one PagerDuty already has,
is found again and nobody is paged twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsctl.errors import UpstreamError, UsageError
from opsctl.incidents.model import KIND, OPEN, Incident, incident_key, new_id
from opsctl.incidents.policy import decide_page, due
from opsctl.operations import current_user, mutation
from opsctl.state.base import Event

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.integrations.pagerduty import PagerDutyAdapter, PlannedCall

log = logging.getLogger("opsctl.incidents")


@dataclass
class Outcome:
    """What a command did: the incident, whether it is new, and the calls a dry run would make."""

    incident: Incident
    created: bool = True
    planned: list[PlannedCall] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


class NotPagedError(UpstreamError):
    """PagerDuty could not be reached: the incident is recorded locally, nobody was paged (exit 4)."""

    def __init__(self, incident: Incident, cause: UpstreamError) -> None:
        super().__init__(
            f"NOBODY WAS PAGED for {incident.id} ({incident.service} SEV-{incident.sev}): {cause.message}",
            "it is recorded locally; page the on-call by phone now, and rerun the same "
            "'opsctl incident declare' or 'opsctl incident sync' to deliver it",
        )
        self.incident = incident


def event(ctx: Context, incident: Incident, kind: str, **data: Any) -> None:
    if ctx.dry_run:
        return
    ctx.store.add_event(Event(KIND, incident.id, ctx.clock(), current_user(), kind, data))


def save(ctx: Context, incident: Incident) -> None:
    """Write the incident if nobody changed it since it was read (its lock makes that the rule)."""
    from opsctl.errors import RefusedError
    from opsctl.state.base import ConflictError

    try:
        incident.version = ctx.store.update_record(incident.to_record()).version
    except ConflictError as exc:
        raise RefusedError(
            f"{incident.id} changed while this command ran: {exc}", "look at it again and rerun"
        ) from None


def declare(
    ctx: Context, service_name: str, *, sev: int, title: str, details: str | None, commander: str | None
) -> Outcome:
    if sev not in (1, 2, 3, 4):
        raise UsageError(f"--sev {sev} is not a severity", "use 1 (outage) to 4 (cosmetic)")
    if not title.strip():
        raise UsageError("--title is empty", "say what is broken, e.g. --title 'login fails for all users'")
    service = ctx.service(service_name)
    env = ctx.env
    key = incident_key(service.name, env, sev, title)
    args = {"service": service.name, "sev": sev, "title": title, "details": details, "commander": commander}
    with mutation(ctx, "incident declare", service=service, args=args, lock="incident", env=env) as op:
        existing = ctx.store.find_records(KIND, service=service.name, key=key, statuses=OPEN)
        if existing:
            incident = Incident.from_record(existing[-1])
            op.note(f"{incident.id} already open with this key; nobody paged twice")
            outcome = Outcome(
                incident, created=False, notices=[f"{incident.id} is already open: nobody was paged twice"]
            )
            if incident.delivery == "pending":
                outcome.planned = deliver(ctx, incident)
            return outcome
        now = ctx.clock()
        rule = ctx.settings.policy.severities[sev]
        decision = decide_page(rule, ctx.settings.business_hours(service.owner), now)
        pagerduty = ctx.pagerduty
        to_pagerduty = pagerduty is not None and decision.page and service.pagerduty is not None
        incident = Incident(
            id=new_id(),
            service=service.name,
            env=env,
            sev=sev,
            title=title.strip(),
            details=details,
            commander=commander,
            status="ticket" if rule.urgency == "none" else "triggered",
            urgency=decision.urgency,
            paged=False,
            backend="pagerduty" if to_pagerduty else "local",
            incident_key=key,
            declared_at=now,
            declared_by=current_user(),
            ack_due_at=due(now, rule.ack_within),
            next_update_due_at=due(now, rule.update_every),
            delivery="pending" if to_pagerduty else "not-needed",
            page_reason=_reason(decision.reason, pagerduty is not None, service.pagerduty is not None),
        )
        op.note(f"{incident.id} {incident.page_reason}")
        outcome = Outcome(incident)
        if ctx.dry_run:
            outcome.planned = deliver(ctx, incident) if to_pagerduty else []
            return outcome
        ctx.store.create_record(incident.to_record())
        incident.version = 1
        event(ctx, incident, "declared", sev=sev, title=incident.title, commander=commander)
        if to_pagerduty:
            deliver(ctx, incident)
        else:
            event(ctx, incident, "recorded", reason=incident.page_reason)
        return outcome


def _reason(decision: str, has_token: bool, has_service: bool) -> str:
    if not has_token:
        return f"local backend (no PagerDuty token configured): nobody paged; policy: {decision}"
    if not has_service:
        return f"service has no pagerduty block: nobody paged; policy: {decision}"
    return decision


def deliver(ctx: Context, incident: Incident) -> list[PlannedCall]:
    """Create the incident at PagerDuty (idempotent by key); on failure keep it pending and raise."""
    pagerduty = pagerduty_client(ctx)
    service = ctx.service(incident.service)
    assert service.pagerduty is not None
    args: dict[str, Any] = {
        "service_id": service.pagerduty.service_id,
        "title": f"[SEV-{incident.sev}] {incident.service}: {incident.title}",
        "urgency": incident.urgency,
        "incident_key": incident.incident_key,
        "details": incident.details,
        "escalation_policy_id": service.pagerduty.escalation_policy,
        "priority_name": f"P{incident.sev}",
    }
    if ctx.dry_run:
        planned: list[PlannedCall] = pagerduty.plan_create(**args)
        return planned
    try:
        created = pagerduty.create_incident(**args)
    except UpstreamError as exc:
        event(ctx, incident, "page_failed", error=exc.message)
        raise NotPagedError(incident, exc) from None
    incident.paged, incident.delivery = True, "delivered"
    incident.pagerduty_id, incident.html_url = created.id, created.html_url
    if created.status == "acknowledged" and incident.status == "triggered":
        incident.status = "acknowledged"
    save(ctx, incident)
    event(ctx, incident, "paged", pagerduty_id=created.id, urgency=incident.urgency, url=created.html_url)
    return []


def pagerduty_client(ctx: Context) -> PagerDutyAdapter:
    client = ctx.pagerduty
    if client is None:
        raise UsageError(
            "this incident lives at PagerDuty but no PagerDuty token is configured", "set integrations.pagerduty.token"
        )
    return client


def sync(ctx: Context) -> list[Outcome]:
    """Deliver every incident whose page did not go out (PagerDuty was unreachable)."""
    outcomes = []
    for record in ctx.store.find_records(KIND, statuses=OPEN):
        incident = Incident.from_record(record)
        if incident.delivery != "pending":
            continue
        service = ctx.service(incident.service)
        args = {"id": incident.id}
        with mutation(ctx, "incident sync", service=service, args=args, lock="incident", env=incident.env):
            outcomes.append(Outcome(incident, created=False, planned=deliver(ctx, incident)))
    return outcomes
