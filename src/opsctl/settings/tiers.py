"""Tiers: the availability, latency and recovery targets a service is held to.

The built-in table is :data:`BUILTIN_TIERS`; a config overrides a field of a tier with a
:class:`TierOverride` or adds a complete new tier (see :meth:`opsctl.settings.Config.effective_tiers`).
"""

from __future__ import annotations

from pydantic import Field

from opsctl.settings.types import Duration, Model


class Tier(Model):
    description: str = ""
    availability: float = Field(gt=0, le=100, description="availability target in percent")
    p95_latency_ms: int | None = Field(default=None, gt=0, description="p95 latency target; null = none")
    rpo: Duration = Field(description="recovery point objective")
    rto: Duration = Field(description="recovery time objective")


class TierOverride(Model):
    description: str | None = None
    availability: float | None = Field(default=None, gt=0, le=100)
    p95_latency_ms: int | None = Field(default=None, gt=0)
    rpo: Duration | None = None
    rto: Duration | None = None


BUILTIN_TIERS: dict[int, Tier] = {
    0: Tier(description="critical (auth, billing)", availability=99.99, p95_latency_ms=200, rpo="0m", rto="15m"),  # type: ignore[arg-type]
    1: Tier(description="core (api, signaling)", availability=99.9, p95_latency_ms=500, rpo="5m", rto="1h"),  # type: ignore[arg-type]
    2: Tier(description="async jobs", availability=99.5, p95_latency_ms=None, rpo="1h", rto="4h"),  # type: ignore[arg-type]
    3: Tier(description="internal tools", availability=99.0, p95_latency_ms=1000, rpo="24h", rto="8h"),  # type: ignore[arg-type]
}
