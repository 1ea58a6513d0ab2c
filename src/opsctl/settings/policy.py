"""How incidents and operations are handled: business hours, severities, confirmation rules,
lock timing, and each team's own business hours."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator

from opsctl.settings.backups import BackupPolicy
from opsctl.settings.deploy import DeployPolicy
from opsctl.settings.drills import DrillPolicy
from opsctl.settings.migrate import MigratePolicy
from opsctl.settings.types import Duration, Model, TimeZone

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class BusinessHours(Model):
    timezone: TimeZone = "UTC"
    start: str = Field(default="09:00", pattern=_HHMM)
    end: str = Field(default="17:00", pattern=_HHMM)
    days: list[Weekday] = Field(default_factory=lambda: list(_WORKDAYS))


class ConfirmRule(Model):
    """Matches when every field given matches; confirmation is needed if any rule matches."""

    tiers: list[int] | None = None
    environments: list[str] | None = None


class MfaRule(Model):
    """An MFA session is required for a command when every field given matches."""

    tiers: list[int] | None = None
    environments: list[str] | None = None
    commands: list[str] | None = Field(default=None, description="command kinds, e.g. 'db restore'")


class SeverityPolicy(Model):
    """How one severity is handled: who is paged when, and which timers run."""

    description: str = ""
    urgency: Literal["high", "low", "none"]
    page: Literal["always", "business_hours", "never"]
    ack_within: Duration | None = Field(default=None, description="acknowledgement due after declaration")
    update_every: Duration | None = Field(default=None, description="a status update due this often while open")
    postmortem_within: Duration | None = Field(default=None, description="post-mortem due after resolution")


def _default_severities() -> dict[int, SeverityPolicy]:
    return {
        1: SeverityPolicy(
            description="total outage, data loss or security breach",
            urgency="high",
            page="always",
            ack_within=timedelta(minutes=15),
            update_every=timedelta(minutes=30),
            postmortem_within=timedelta(hours=48),
        ),
        2: SeverityPolicy(
            description="major feature broken or high latency",
            urgency="high",
            page="always",
            ack_within=timedelta(minutes=15),
            update_every=timedelta(minutes=30),
            postmortem_within=timedelta(hours=48),
        ),
        3: SeverityPolicy(description="minor bug with a workaround", urgency="low", page="business_hours"),
        4: SeverityPolicy(description="cosmetic: a ticket, nobody is paged", urgency="none", page="never"),
    }


class Policy(Model):
    business_hours: BusinessHours = BusinessHours()
    severities: dict[int, SeverityPolicy] = Field(
        default_factory=_default_severities,
        description="incident handling per severity (1-4); a partial entry is merged over the default",
    )
    confirm: list[ConfirmRule] = Field(
        default_factory=lambda: [ConfirmRule(environments=["production"]), ConfirmRule(tiers=[0])]
    )
    plaintext_env_secrets: Literal["warn", "refuse"] = Field(
        default="warn", description="what to do with env:NAME secret references"
    )
    lock_ttl: Duration = Field(default=timedelta(seconds=60), description="lock lease, renewed while held")
    lock_wait: Duration = Field(
        default=timedelta(seconds=15),
        description="how long a short operation (an incident command) waits for a held lock before giving up",
    )
    deploy: DeployPolicy = DeployPolicy()
    migrate: MigratePolicy = MigratePolicy()
    backups: BackupPolicy = BackupPolicy()
    drills: DrillPolicy = DrillPolicy()
    mfa: list[MfaRule] = Field(
        default_factory=lambda: [MfaRule(commands=["db restore"], environments=["production"])],
        description="sensitive operations that need an MFA session first (the manual: MFA for sensitive ops)",
    )

    @field_validator("severities", mode="before")
    @classmethod
    def _merge_severities(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged: dict[Any, Any] = {}
        defaults = _default_severities()
        for key, given in value.items():
            try:
                number = int(key)
            except (TypeError, ValueError):
                merged[key] = given
                continue
            if number not in defaults:
                raise ValueError(f"severity {key} does not exist: severities are 1-4")
            base = defaults[number].model_dump()
            merged[number] = {**base, **given} if isinstance(given, dict) else given
        return {**{n: p.model_dump() for n, p in defaults.items()}, **merged}

    def needs_mfa(self, command: str, tier: int, env: str) -> bool:
        for rule in self.mfa:
            if rule.tiers is not None and tier not in rule.tiers:
                continue
            if rule.environments is not None and env not in rule.environments:
                continue
            if rule.commands is not None and command not in rule.commands:
                continue
            return True
        return False

    def needs_confirmation(self, tier: int, env: str) -> bool:
        for rule in self.confirm:
            if rule.tiers is not None and tier not in rule.tiers:
                continue
            if rule.environments is not None and env not in rule.environments:
                continue
            return True
        return False


class Team(Model):
    business_hours: BusinessHours | None = None
    pagerduty_schedule: str | None = None
