"""How migrations and column changes run (``policy.migrate``): the lock timeout every DDL
statement gets, the bounded retries when it cannot get its lock, and the backfill's pace."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from opsctl.settings.types import Duration, Model


class MigratePolicy(Model):
    lock_timeout: Duration = Field(
        default=timedelta(seconds=2),
        description="lock_timeout of every migration statement: a DDL waiting for its lock queues every query behind it",
    )
    statement_timeout: Duration = Field(
        default=timedelta(minutes=10), description="statement_timeout of migration statements (not CONCURRENTLY ones)"
    )
    retries: int = Field(default=5, ge=0, le=100, description="retries of a statement that hit lock_timeout")
    retry_backoff: Duration = Field(
        default=timedelta(seconds=1), description="first wait between retries (doubles, with jitter, up to 30s)"
    )
    allow_unsafe: bool = Field(
        default=False, description="let 'migrate run' apply statements the linter calls unsafe (never forbidden ones)"
    )
    batch_size: int = Field(default=1000, ge=1, le=1_000_000, description="the backfill's first batch size")
    batch_target: Duration = Field(
        default=timedelta(milliseconds=200), description="the backfill adapts its batch size toward this duration"
    )
    max_rate: float | None = Field(default=None, gt=0, description="backfill ceiling in rows per second (null: none)")
    max_replica_lag: Duration = Field(
        default=timedelta(seconds=10), description="the backfill waits while a replica lags more than this"
    )
