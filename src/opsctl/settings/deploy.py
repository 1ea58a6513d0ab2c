"""How deploys run: the canary's steps and bake times per tier, the analysis thresholds, and
the confirmations, checks and delays around them (``policy.deploy``)."""

from __future__ import annotations

import itertools
from datetime import timedelta

from pydantic import Field, field_validator

from opsctl.settings.types import Duration, Model


class AnalysisPolicy(Model):
    """When a canary step passes: inside the absolute limits AND not significantly worse than stable."""

    window: Duration = Field(default=timedelta(minutes=1), description="range of rate()/increase() in the queries")
    max_error_ratio: float = Field(default=0.01, ge=0, le=1, description="absolute ceiling of the canary's 5xx ratio")
    error_ratio_factor: float = Field(default=2.0, ge=1, description="canary/stable error ratio that counts as worse")
    error_ratio_min_diff: float = Field(
        default=0.005, ge=0, le=1, description="…and by at least this much (noise on a tiny baseline is not a spike)"
    )
    latency_factor: float = Field(default=1.5, ge=1, description="canary/stable p95 that counts as worse")
    latency_min_diff_ms: float = Field(default=50, ge=0, description="…and by at least this many ms")
    min_requests: int = Field(default=20, ge=1, description="fewer requests in the window (either track): inconclusive")
    inconclusive_limit: int = Field(
        default=3, ge=1, description="consecutive inconclusive checks before the canary is rolled back (or paused)"
    )


def _default_bake() -> dict[int, timedelta]:
    return {0: timedelta(minutes=10), 1: timedelta(minutes=5), 2: timedelta(minutes=2), 3: timedelta(minutes=1)}


class DeployPolicy(Model):
    steps: list[int] = Field(default_factory=lambda: [5, 20, 50, 100], description="canary traffic weights in percent")
    bake: dict[int, Duration] = Field(
        default_factory=_default_bake, description="bake time per step, by tier (tier 0 bakes longest)"
    )
    analysis: AnalysisPolicy = AnalysisPolicy()
    confirm_tiers: list[int] = Field(
        default_factory=lambda: [0, 1],
        description="tiers whose canaries confirm before starting and before 100% (production always does)",
    )
    production: list[str] = Field(default_factory=lambda: ["production"], description="production environments")
    staging: str | None = Field(
        default="staging", description="where an image must have succeeded before a production canary (null: no check)"
    )
    ready_timeout: Duration = Field(default=timedelta(minutes=5), description="how long pods may take to be ready")
    bluegreen_keep: Duration = Field(
        default=timedelta(minutes=10),
        description="how long blue is kept after the switch (deploy rollback returns to it)",
    )
    poll: Duration = Field(default=timedelta(seconds=2), description="how often readiness is checked")

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[int]) -> list[int]:
        return check_steps(value)

    def bake_for(self, tier: int) -> timedelta:
        return self.bake.get(tier, timedelta(minutes=5))


def check_steps(value: list[int]) -> list[int]:
    """Weights rise strictly from above 0 and end at 100."""
    if not value:
        raise ValueError("no steps: give weights like 5,20,50,100")
    if any(not 0 < w <= 100 for w in value):
        raise ValueError("weights are percentages above 0 and at most 100")
    if any(b <= a for a, b in itertools.pairwise(value)):
        raise ValueError("weights must rise step by step")
    if value[-1] != 100:
        raise ValueError("the last step must be 100 (the promotion)")
    return value
