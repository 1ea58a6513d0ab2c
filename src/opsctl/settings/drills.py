"""When drills are due (``drills`` per service, defaults under ``policy.drills``) and how a drill
runs: how long the failover writes its marker sequence, and how long a promotion or a DNS change
may take before the drill calls it failed."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, Field

from opsctl.settings.types import Duration, Model

NAMED_CADENCES = {"weekly": "7d", "monthly": "1 month", "quarterly": "3 months", "yearly": "12 months", "never": "-"}
_CADENCE = re.compile(r"^(?:weekly|monthly|quarterly|yearly|never|[1-9][0-9]{0,3}\s*(?:d|w|months?))$")


def _check_cadence(value: str) -> str:
    text = " ".join(str(value).split()).lower()
    if not _CADENCE.fullmatch(text):
        raise ValueError("a cadence: weekly, monthly, quarterly, yearly, never, or N d / N w / N months")
    return text


Cadence = Annotated[str, AfterValidator(_check_cadence)]


class DrillSchedule(Model):
    """How often each drill must run for a service (a calendar month is a month, not 30 days)."""

    restore: Cadence | None = Field(default=None, description="restore drill cadence (default: policy.drills)")
    failover: Cadence | None = Field(default=None, description="failover drill cadence (default: policy.drills)")


class DrillPolicy(Model):
    restore: Cadence = Field(default="monthly", description="the manual: a database restore drill every month")
    failover: Cadence = Field(default="quarterly", description="the manual: a region failover drill every quarter")
    markers: Duration = Field(
        default=timedelta(seconds=10),
        description="how long the failover drill writes its marker sequence (one a second) before the failure",
    )
    promote_timeout: Duration = Field(
        default=timedelta(minutes=10), description="a promotion that takes longer fails the drill (and rolls back)"
    )
    dns_timeout: Duration = Field(
        default=timedelta(minutes=2), description="a DNS change not in sync by then fails the drill"
    )
    max_lag: Duration | None = Field(
        default=None,
        description="preflight: the replica may lag at most this (default: the tier's RPO, or 1s for an RPO of 0)",
    )
