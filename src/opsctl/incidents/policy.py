"""The incident policy of the operations manual, applied at a given instant.

Pure functions of the config and a clock: who is paged, the urgency, and when
the acknowledgement, the next status update and the post-mortem are due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from opsctl.settings import BusinessHours, SeverityPolicy

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

CHECKLISTS: dict[int, list[str]] = {
    1: [
        "Acknowledge within 15 min: opsctl incident ack {id}",
        "Name an incident commander; open the incident channel",
        "Triage: what is broken, for whom, since when (dashboards, recent deploys)",
        "Mitigate first: roll back, scale up, or disable the feature — root cause later",
        "Communicate every 30 min: opsctl incident update {id} --message '...'",
        "Resolve when customer impact ends; post-mortem within 48 h: opsctl incident postmortem {id}",
    ],
    3: [
        "Triage during business hours; note the workaround",
        "Post updates as findings change: opsctl incident update {id} --message '...'",
        "Resolve when fixed; raise to SEV-2 if impact grows",
    ],
    4: ["Track it as a ticket; no page, no incident timers"],
}
CHECKLISTS[2] = CHECKLISTS[1]


@dataclass(frozen=True)
class PageDecision:
    urgency: str  # "high", "low", "none"
    page: bool
    reason: str


def in_business_hours(hours: BusinessHours, instant: datetime) -> bool:
    """Whether ``instant`` falls inside ``hours`` in their own time zone (DST aware)."""
    local = instant.astimezone(ZoneInfo(hours.timezone))
    if _DAYS[local.weekday()] not in hours.days:
        return False
    start = time.fromisoformat(hours.start)
    end = time.fromisoformat(hours.end)
    return start <= local.time().replace(tzinfo=None) < end


def decide_page(rule: SeverityPolicy, hours: BusinessHours, instant: datetime) -> PageDecision:
    if rule.page == "never" or rule.urgency == "none":
        return PageDecision("none", False, "a ticket: the policy pages nobody for it")
    if rule.page == "always":
        return PageDecision(rule.urgency, True, "the policy pages at any hour")
    if in_business_hours(hours, instant):
        return PageDecision(rule.urgency, True, f"inside business hours of the owning team ({hours.timezone})")
    return PageDecision(
        rule.urgency,
        False,
        f"outside business hours of the owning team ({hours.start}-{hours.end} {hours.timezone}): recorded, not paged",
    )


def due(start: datetime | None, within: timedelta | None) -> datetime | None:
    return None if start is None or within is None else start + within


def overdue(deadline: datetime | None, now: datetime) -> bool:
    return deadline is not None and now > deadline
