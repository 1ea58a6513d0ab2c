"""Paging: the step that creates the incident at PagerDuty, and the client of the incident's environment.

An incident lives at the PagerDuty of its own environment (per-environment integrations), so
every call takes the client for ``incident.env``, not the invocation's ``--env``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsctl.errors import UpstreamError, UsageError
from opsctl.incidents.model import Incident
from opsctl.operations.model import Step

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.integrations.pagerduty import PagerDutyAdapter
    from opsctl.settings import Service


def page_step(ctx: Context, incident: Incident) -> Step:
    """Create the incident at PagerDuty (idempotent by key); on failure keep it pending and raise."""
    args = create_args(ctx, incident)
    [call] = pagerduty_client(ctx, incident.env).plan_create(**args)
    return Step(
        "page",
        f"{call.method} {call.path}",
        target="PagerDuty",
        detail={"method": call.method, "path": call.path, "body": call.body},
        apply=lambda run: deliver(ctx, incident, args),
    )


def create_args(ctx: Context, incident: Incident) -> dict[str, Any]:
    service = service_in(ctx, incident)
    if service.pagerduty is None:
        raise UsageError(f"service {service.name} has no pagerduty block", "add one, or resolve the incident locally")
    return {
        "service_id": service.pagerduty.service_id,
        "title": f"[SEV-{incident.sev}] {incident.service}: {incident.title}",
        "urgency": incident.urgency,
        "incident_key": incident.incident_key,
        "details": incident.details,
        "escalation_policy_id": service.pagerduty.escalation_policy,
        "priority_name": f"P{incident.sev}",
    }


def deliver(ctx: Context, incident: Incident, args: dict[str, Any] | None = None) -> list[str]:
    """Page; returns warnings from PagerDuty's side (e.g. created without a priority)."""
    pagerduty = pagerduty_client(ctx, incident.env)
    try:
        created = pagerduty.create_incident(**(args or create_args(ctx, incident)))
    except UpstreamError as exc:
        from opsctl.incidents.engine import NotPagedError, event

        event(ctx, incident, "page_failed", error=exc.message)
        raise NotPagedError(incident, exc.message) from None
    from opsctl.incidents.engine import event, save

    incident.paged, incident.delivery = True, "delivered"
    incident.pagerduty_id, incident.html_url = created.id, created.html_url
    if created.status == "acknowledged" and incident.status == "triggered":
        incident.status = "acknowledged"
    save(ctx, incident)
    warnings = list(getattr(created, "warnings", ()) or ())
    event(ctx, incident, "paged", pagerduty_id=created.id, urgency=incident.urgency, url=created.html_url)
    for warning in warnings:
        event(ctx, incident, "page_warning", warning=warning)
    return warnings


def service_in(ctx: Context, incident: Incident) -> Service:
    """The incident's service as configured in the incident's own environment."""
    return ctx.service(incident.service, env=incident.env)


def pagerduty_client(ctx: Context, env: str) -> PagerDutyAdapter:
    """The PagerDuty client of ``env`` (an incident lives at its own environment's PagerDuty)."""
    client: PagerDutyAdapter | None = ctx.clients.get("pagerduty", env=env)
    if client is None:
        raise UsageError(
            "this incident lives at PagerDuty but no PagerDuty token is configured", "set integrations.pagerduty.token"
        )
    return client
