"""`db backups SERVICE`: the backups, the restorable window, and the policy check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsctl.backups.policy import VIOLATION, evaluate
from opsctl.backups.sources import inventory

if TYPE_CHECKING:
    from opsctl.context import Context


def backups(ctx: Context, name: str) -> dict[str, Any]:
    service = ctx.service(name)
    now = ctx.clock()
    inv = inventory(ctx, service, ctx.env, now)
    rules = evaluate(inv, ctx.settings.policy.backups, now)
    return {
        "service": service.name, "env": ctx.env, "provider": inv.provider, "source": inv.source,
        "backups": [b.to_dict() for b in inv.backups],
        "window": {"earliest": inv.earliest, "latest": inv.latest, "basis": inv.window_basis},
        "copies": [c.to_dict() for c in inv.copies],
        "policy": rules,
        "violations": sum(1 for r in rules if r["status"] == VIOLATION),
    }  # fmt: skip
