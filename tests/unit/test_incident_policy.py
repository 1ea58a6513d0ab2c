"""Severity policy at fixed instants: urgency, paging inside business hours (DST included), due times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsctl.incidents.model import incident_key
from opsctl.incidents.policy import decide_page, due, in_business_hours, overdue
from opsctl.settings import BusinessHours, Config

BERLIN = BusinessHours(timezone="Europe/Berlin", start="09:00", end="18:00")
SEVERITIES = Config().policy.severities


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        (utc(2026, 11, 26, 7, 59), False),  # Thu 08:59 CET
        (utc(2026, 11, 26, 8, 0), True),  # Thu 09:00 CET
        (utc(2026, 11, 26, 16, 59), True),  # 17:59 CET
        (utc(2026, 11, 26, 17, 0), False),  # 18:00 CET: end is exclusive
        (utc(2026, 11, 28, 12, 0), False),  # Saturday
        # summer time (CEST, UTC+2): 09:00 local is 07:00 UTC
        (utc(2026, 7, 1, 7, 0), True),
        (utc(2026, 7, 1, 6, 59), False),
        # the DST change: Sunday 29 March 2026 is a weekend, Monday 30 March is the first CEST workday
        (utc(2026, 3, 27, 8, 0), True),  # Fri 09:00 CET
        (utc(2026, 3, 30, 7, 0), True),  # Mon 09:00 CEST
        (utc(2026, 3, 30, 8, 0), True),  # Mon 10:00 CEST (would be 09:00 without DST)
        (utc(2026, 3, 30, 16, 0), False),  # Mon 18:00 CEST — inside if the zone were ignored
        (utc(2026, 10, 26, 7, 30), False),  # Mon 08:30 CET after the autumn change (09:30 in CEST)
    ],
)
def test_business_hours_in_their_time_zone(instant, inside):
    assert in_business_hours(BERLIN, instant) is inside


def test_new_york_team_hours():
    ny = BusinessHours(timezone="America/New_York", start="09:00", end="17:00")
    assert in_business_hours(ny, utc(2026, 11, 26, 14, 0))  # 09:00 EST
    assert not in_business_hours(ny, utc(2026, 11, 26, 13, 59))
    assert in_business_hours(ny, utc(2026, 3, 9, 13, 0))  # 09:00 EDT, the day after the US change


@pytest.mark.parametrize("sev", [1, 2])
def test_sev1_and_sev2_page_at_any_hour_high_urgency(sev):
    for instant in (utc(2026, 11, 26, 3, 0), utc(2026, 11, 29, 3, 0)):  # 4 a.m. weekday, Sunday night
        decision = decide_page(SEVERITIES[sev], BERLIN, instant)
        assert (decision.urgency, decision.page) == ("high", True)


def test_sev3_pages_low_urgency_only_inside_business_hours():
    inside = decide_page(SEVERITIES[3], BERLIN, utc(2026, 11, 26, 10, 0))
    outside = decide_page(SEVERITIES[3], BERLIN, utc(2026, 11, 26, 20, 0))
    assert (inside.urgency, inside.page) == ("low", True)
    assert (outside.urgency, outside.page) == ("low", False)
    assert "outside business hours" in outside.reason


def test_sev4_is_a_ticket():
    decision = decide_page(SEVERITIES[4], BERLIN, utc(2026, 11, 26, 10, 0))
    assert (decision.urgency, decision.page) == ("none", False)


def test_due_times_per_severity():
    t0 = utc(2026, 11, 26, 10, 0)
    assert due(t0, SEVERITIES[1].ack_within) == utc(2026, 11, 26, 10, 15)
    assert due(t0, SEVERITIES[2].update_every) == utc(2026, 11, 26, 10, 30)
    assert due(t0, SEVERITIES[1].postmortem_within) == utc(2026, 11, 28, 10, 0)
    assert due(t0, SEVERITIES[3].ack_within) is None and due(t0, SEVERITIES[4].update_every) is None
    assert overdue(utc(2026, 11, 26, 10, 15), utc(2026, 11, 26, 10, 15, 1))
    assert not overdue(utc(2026, 11, 26, 10, 15), utc(2026, 11, 26, 10, 15))
    assert not overdue(None, t0)


def test_policy_override_from_config():
    from opsctl.configfile import parse

    config = parse("policy:\n  severities:\n    2: {ack_within: 5m}\n    3: {page: always}\n", "c")
    assert config.policy.severities[2].ack_within == timedelta(minutes=5)
    assert config.policy.severities[2].update_every == timedelta(minutes=30)
    assert config.policy.severities[3].page == "always"


def test_incident_key_is_stable_and_distinguishes():
    a = incident_key("auth", "production", 1, "Login  fails ")
    assert a == incident_key("auth", "production", 1, "login fails")
    assert a != incident_key("auth", "production", 2, "login fails")
    assert a != incident_key("auth", "staging", 1, "login fails")
    assert a != incident_key("billing", "production", 1, "login fails")
    assert a.startswith("opsctl/auth/production/sev1/")
