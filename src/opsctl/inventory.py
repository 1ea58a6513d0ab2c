"""Views of the configuration: services, tiers, and the effective config.

Plain data out (dicts and lists), rendered by the commands.  ``services`` and
``tiers`` work on the cached snapshot (:func:`opsctl.configfile.snapshot`), so
they start fast; secret values are never resolved here, only references shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsctl.settings import Config, Service

BLOCKS = ("pagerduty", "kubernetes", "prometheus", "database", "cache", "dns")


def sla(tier: dict[str, Any]) -> dict[str, Any]:
    return {k: tier[k] for k in ("availability", "p95_latency_ms", "rpo", "rto")}


def services(snapshot: dict[str, Any], tier: int | None = None) -> list[dict[str, Any]]:
    tiers = snapshot["tiers"]
    chosen = [s for s in snapshot["services"] if tier is None or s["tier"] == tier]
    rows = []
    for service in sorted(chosen, key=lambda s: (s["tier"], s["name"])):
        rows.append(
            {
                "name": service["name"],
                "tier": service["tier"],
                "owner": service["owner"],
                "description": service["description"],
                "environments": [
                    e for e in snapshot["environments"] if e == snapshot["default_env"] or e in service["environments"]
                ],
                "integrations": [b for b in BLOCKS if service.get(b) is not None],
                "sla": sla(tiers[str(service["tier"])]),
            }
        )
    return rows


def tiers(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for number, tier in sorted(snapshot["tiers"].items(), key=lambda item: int(item[0])):
        rows.append(
            {
                "tier": int(number),
                "description": tier["description"],
                **sla(tier),
                "overridden": int(number) in snapshot["overridden_tiers"],
                "services": [s["name"] for s in snapshot["services"] if s["tier"] == int(number)],
            }
        )
    return rows


def effective_service(config: Config, service: Service, env: str) -> dict[str, Any]:
    """One service as it applies in ``env``: its environment's blocks merged, its tier's SLA in."""
    merged = service.in_env(env)
    data = merged.model_dump(mode="json", by_alias=True, exclude={"environments"}, exclude_none=True)
    data["env"] = env
    data["sla"] = sla(config.effective_tiers()[service.tier].model_dump(mode="json"))
    data["confirmation_required"] = config.policy.needs_confirmation(service.tier, env)
    data["business_hours"] = config.business_hours(service.owner).model_dump(mode="json")
    data["environments"] = sorted(service.environments)
    return data


def effective_config(snapshot: dict[str, Any], source: str) -> dict[str, Any]:
    """The whole config with defaults filled in and built-in tiers merged."""
    data = {k: v for k, v in snapshot.items() if k != "overridden_tiers"}
    return {"source": source, **data}
