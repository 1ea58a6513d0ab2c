"""Declaring incidents and delivering them to PagerDuty, as runs of the operation runner.

The record is written to the state store BEFORE anything is sent, keyed by the incident key,
so a declaration that died half-way, or one PagerDuty already has, is found again and nobody
is paged twice.  Incident commands are short operations: they wait a bounded time for the
service's incident lock (``policy.lock_wait``), so six responders declaring the same incident
at once all get the one incident.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsctl.errors import ExitCode, UpstreamError, UsageError
from opsctl.incidents.model import KIND, OPEN, Incident, incident_key
from opsctl.incidents.paging import page_step, service_in
from opsctl.incidents.policy import decide_page, due
from opsctl.operations.audit import current_user
from opsctl.operations.model import Operation, RunError, RunResult, Step
from opsctl.operations.runner import execute
from opsctl.state.base import ConflictError, Event

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.operations.run import Run
    from opsctl.settings import Service

log = logging.getLogger("opsctl.incidents")

# Bounds on free text: PagerDuty cuts titles at 1024 characters; the rest keeps records sane.
LIMITS = {"title": 1024, "details": 65536, "commander": 200, "message": 8192, "resolution": 8192}


@dataclass
class Outcome:
    """What a command did: the incident, whether it is new, the plan of a dry run, and what to tell."""

    incident: Incident
    created: bool = True
    notices: list[str] = field(default_factory=list)  # said once on stderr
    not_paged: str | None = None  # the real reason nobody was paged by this declaration
    run: RunResult | None = None

    @property
    def planned_calls(self) -> list[dict[str, Any]]:
        steps = self.run.plan if self.run is not None else []
        return [s["detail"] for s in steps if s.get("target") == "PagerDuty" and isinstance(s.get("detail"), dict)]


class NotPagedError(UpstreamError):
    """The page did not (surely) reach PagerDuty: the incident is recorded locally (exit 4, or 130)."""

    def __init__(self, incident: Incident, cause: str, exit_code: ExitCode = ExitCode.UPSTREAM) -> None:
        super().__init__(
            f"NOBODY WAS PAGED for {incident.id} ({incident.service} SEV-{incident.sev}): {cause}",
            "it is recorded locally; page the on-call by phone now, and rerun the same "
            "'opsctl incident declare' or 'opsctl incident sync' to deliver it",
        )
        self.incident = incident
        self.exit_code = exit_code


def check_text(**fields: str | None) -> None:
    """Free text must be valid UTF-8 and within its limit (a clear exit 2, audited)."""
    for name, value in fields.items():
        if value is None:
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"--{name} is not valid UTF-8", "check the terminal's or the script's encoding") from None
        if len(value) > LIMITS[name]:
            raise UsageError(
                f"--{name} is {len(value):,} characters long; the limit is {LIMITS[name]:,}",
                "put long text in a document and link it",
            )


def event(ctx: Context, incident: Incident, kind: str, **data: Any) -> None:
    if ctx.dry_run:
        return
    clean = {k: v for k, v in data.items() if v is not None}
    ctx.store.add_event(Event(KIND, incident.id, ctx.clock(), current_user(), kind, clean))


def save(ctx: Context, incident: Incident) -> None:
    """Write the incident if nobody changed it since it was read (its lock makes that the rule)."""
    from opsctl.errors import RefusedError

    try:
        incident.version = ctx.store.update_record(incident.to_record()).version
    except ConflictError as exc:
        raise RefusedError(
            f"{incident.id} changed while this command ran: {exc}", "look at it again and rerun"
        ) from None


def incident_operation(kind: str, service: Service, env: str, params: dict[str, Any], check: Any = None) -> Operation:
    return Operation(kind, service, params, lock="incident", short=True, env=env, check=check)


def declare(
    ctx: Context, service_name: str, *, sev: int, title: str, details: str | None, commander: str | None
) -> Outcome:
    service = ctx.service(service_name)
    env = ctx.env
    params = {"service": service.name, "sev": sev, "title": title, "details": details, "commander": commander}

    def check() -> None:
        if sev not in (1, 2, 3, 4):
            raise UsageError(f"--sev {sev} is not a severity", "use 1 (outage) to 4 (cosmetic)")
        check_text(title=title, details=details, commander=commander)
        if not title.strip():
            raise UsageError("--title is empty", "say what is broken, e.g. --title 'login fails for all users'")

    made: dict[str, Outcome] = {}

    def plan(run: Run) -> list[Step]:
        key = incident_key(service.name, env, sev, title)
        existing = ctx.store.find_records(KIND, service=service.name, key=key, statuses=OPEN)
        if existing:
            incident = Incident.from_record(existing[-1])
            made["outcome"] = Outcome(
                incident, created=False, notices=[f"{incident.id} is already open: nobody was paged twice"]
            )
            return [page_step(ctx, incident)] if incident.delivery == "pending" else []
        incident = _new_incident(ctx, service, env, sev, title, details, commander, key)
        outcome = made["outcome"] = Outcome(incident)
        if incident.delivery == "not-needed" and incident.status != "ticket":
            outcome.not_paged = incident.page_reason
        steps = [
            Step(
                "record",
                f"record the SEV-{incident.sev} incident in the state store",
                target="state store",
                detail={"service": service.name, "env": env, "key": key, "paged_by_policy": incident.delivery},
                apply=lambda r: _record(ctx, incident),
            )
        ]
        if incident.delivery == "pending":
            steps.append(page_step(ctx, incident))
        return steps

    op = incident_operation("incident declare", service, env, params, check)
    outcome = _run(ctx, op, plan, made)
    if outcome.created and not ctx.dry_run:
        run_id = outcome.run.run_id if outcome.run else None
        log.info("declared %s (run %s)", outcome.incident.id, run_id)
    return outcome


def _new_incident(
    ctx: Context,
    service: Service,
    env: str,
    sev: int,
    title: str,
    details: str | None,
    commander: str | None,
    key: str,
) -> Incident:
    from opsctl.ids import new_id

    now = ctx.clock()
    rule = ctx.settings.policy.severities[sev]
    decision = decide_page(rule, ctx.settings.business_hours(service.owner), now)
    pagerduty = ctx.clients.get("pagerduty", env=env)
    reason = decision.reason
    if decision.page and pagerduty is None:
        reason = "no PagerDuty token is configured (local backend)"
    elif decision.page and service.pagerduty is None:
        reason = f"service {service.name} has no pagerduty block in the config"
    to_pagerduty = pagerduty is not None and decision.page and service.pagerduty is not None
    return Incident(
        id=new_id("INC"),
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
        page_reason=reason,
    )


def _record(ctx: Context, incident: Incident) -> str:
    from opsctl.ids import new_id

    for _ in range(5):
        try:
            ctx.store.create_record(incident.to_record())
            break
        except ConflictError:  # 40-bit ids rarely collide; a collision takes a fresh id
            incident.id = new_id("INC")
    else:
        raise UpstreamError("could not find a free incident id after 5 attempts")
    incident.version = 1
    event(ctx, incident, "declared", sev=incident.sev, title=incident.title, commander=incident.commander)
    if incident.delivery != "pending":
        event(ctx, incident, "recorded", reason=incident.page_reason)
    return incident.id


def _run(ctx: Context, op: Operation, plan: Any, made: dict[str, Outcome]) -> Outcome:
    """Execute; a declaration whose page was cut off is reported as NOBODY WAS PAGED."""
    try:
        result = execute(ctx, op, plan)
    except RunError as exc:
        outcome = made.get("outcome")
        if outcome is not None and outcome.incident.delivery == "pending" and exc.exit_code == ExitCode.INTERRUPTED:
            reason = "interrupted before PagerDuty confirmed the page (it may or may not have gone out)"
            raise NotPagedError(outcome.incident, reason, ExitCode.INTERRUPTED) from None
        raise
    outcome = made["outcome"]
    outcome.run = result
    return outcome


def sync(ctx: Context) -> list[Outcome]:
    """Deliver every incident whose page did not go out (PagerDuty was unreachable)."""
    outcomes = []
    env = ctx.env if ctx.env_name is not None else None
    for record in ctx.store.find_records(KIND, statuses=OPEN):
        incident = Incident.from_record(record)
        if incident.delivery != "pending" or (env is not None and incident.env != env):
            continue
        service = service_in(ctx, incident)
        made: dict[str, Outcome] = {}

        def plan(run: Run, incident_id: str = incident.id, made: dict[str, Outcome] = made) -> list[Step]:
            from opsctl.incidents.lifecycle import load

            current = load(ctx, incident_id)
            made["outcome"] = Outcome(current, created=False)
            return [page_step(ctx, current)] if current.delivery == "pending" else []

        op = incident_operation("incident sync", service, incident.env, {"id": incident.id})
        outcomes.append(_run(ctx, op, plan, made))
    return outcomes


def warnings_of(outcome: Outcome) -> list[str]:
    """PagerDuty-side warnings the page step returned (say them once)."""
    if outcome.run is None:
        return []
    value = outcome.run.results.get("page")
    return [str(w) for w in value] if isinstance(value, list) else []
