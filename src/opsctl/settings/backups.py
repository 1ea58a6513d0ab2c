"""The backup policy ``db backups`` checks (``policy.backups``), the operations manual's numbers."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from opsctl.settings.types import Duration, Model


class BackupPolicy(Model):
    pitr: Duration = Field(default=timedelta(days=7), description="point-in-time recovery must reach back this far")
    max_wal_age: Duration = Field(
        default=timedelta(hours=1), description="the latest restorable point may be at most this old"
    )
    daily_days: int = Field(
        default=7, ge=1, le=366, description="a daily backup must exist for each of these last days"
    )
    keep: Duration = Field(default=timedelta(days=30), description="how long backups must be kept")
