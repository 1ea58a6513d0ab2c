"""Views of the configuration: services, tiers, and the effective config.

Plain data out (dicts and lists), rendered by the commands.  Secret values are
never resolved here: they appear only as references.
"""

from __future__ import annotations

from typing import Any

from opsctl.settings import Config, Service, Tier
from opsctl.timeutil import format_duration

BLOCKS = ("pagerduty", "kubernetes", "prometheus", "database", "cache", "dns")


def sla(tier: Tier) -> dict[str, Any]:
    return {
        "availability": tier.availability,
        "p95_latency_ms": tier.p95_latency_ms,
        "rpo": format_duration(tier.rpo),
        "rto": format_duration(tier.rto),
    }


def service_summary(config: Config, service: Service) -> dict[str, Any]:
    tier = config.effective_tiers()[service.tier]
    return {
        "name": service.name,
        "tier": service.tier,
        "owner": service.owner,
        "description": service.description,
        "environments": [e for e in config.environments if e == config.default_env or e in service.environments],
        "integrations": [b for b in BLOCKS if getattr(service, b) is not None],
        "sla": sla(tier),
    }


def services(config: Config, tier: int | None = None) -> list[dict[str, Any]]:
    chosen = [s for s in config.services if tier is None or s.tier == tier]
    return [service_summary(config, s) for s in sorted(chosen, key=lambda s: (s.tier, s.name))]


def tiers(config: Config) -> list[dict[str, Any]]:
    rows = []
    for number, tier in config.effective_tiers().items():
        rows.append(
            {
                "tier": number,
                "description": tier.description,
                **sla(tier),
                "overridden": number in config.tiers,
                "services": [s.name for s in config.services if s.tier == number],
            }
        )
    return rows


def effective_service(config: Config, service: Service, env: str) -> dict[str, Any]:
    """One service as it applies in ``env``: its environment's blocks merged, its tier's SLA in."""
    merged = service.in_env(env)
    data = merged.model_dump(mode="json", by_alias=True, exclude={"environments"}, exclude_none=True)
    data["env"] = env
    data["sla"] = sla(config.effective_tiers()[service.tier])
    data["confirmation_required"] = config.policy.needs_confirmation(service.tier, env)
    data["business_hours"] = config.business_hours(service.owner).model_dump(mode="json")
    data["environments"] = sorted(service.environments)
    return data


def effective_config(config: Config, source: str) -> dict[str, Any]:
    """The whole config with defaults filled in and built-in tiers merged."""
    data = config.model_dump(mode="json", by_alias=True)
    data["tiers"] = {str(n): t.model_dump(mode="json") for n, t in config.effective_tiers().items()}
    return {"source": source, **data}
