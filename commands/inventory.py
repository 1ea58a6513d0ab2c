"""`opsctl services` and `opsctl tiers`.

Value cells hold no spaces (``200ms``, ``<200ms``, ``auth,billing``) and free text comes
last, so ``opsctl services | awk '{print $5}'`` picks one column on every row.
"""

from __future__ import annotations

import typer

from opsctl.commands._common import context
from opsctl.output import Column


def register(app: typer.Typer) -> None:
    app.command("services")(services)
    app.command("tiers")(tiers)


def services(
    ctx: typer.Context,
    tier: int | None = typer.Option(None, "--tier", help="Only services of this tier."),
) -> None:
    """List the services with their tier, owner and SLA."""
    from opsctl import inventory

    c = context(ctx)
    rows = inventory.services(c.snapshot, tier)
    c.output.data(
        rows,
        columns=[
            Column("name", style="bold"),
            Column("tier"),
            Column("owner"),
            Column("sla", "AVAIL", fmt=lambda s: f"{s['availability']}%"),
            Column("sla", "P95", fmt=lambda s: _ms(s["p95_latency_ms"])),
            Column("sla", "RPO", fmt=lambda s: s["rpo"]),
            Column("sla", "RTO", fmt=lambda s: s["rto"]),
            Column("description"),
        ],
    )


def tiers(ctx: typer.Context) -> None:
    """Show the tiers and their SLA: availability, p95 latency, RPO, RTO."""
    from opsctl import inventory

    c = context(ctx)
    c.output.data(
        inventory.tiers(c.snapshot),
        columns=[
            Column("tier", style="bold"),
            Column("availability", "AVAIL", fmt=lambda v: f"{v}%"),
            Column("p95_latency_ms", "P95", fmt=lambda v: f"<{_ms(v)}" if v else "-"),
            Column("rpo", "RPO"),
            Column("rto", "RTO"),
            Column("services", fmt=lambda names: ",".join(names) if names else "-"),
            Column("description"),
        ],
    )


def _ms(value: int | None) -> str:
    return f"{value}ms" if value else "-"
