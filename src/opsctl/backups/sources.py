"""Reading a service's backups from its provider into an :class:`Inventory`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsctl.backups.model import Inventory, Item
from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.integrations.rds import Rds
    from opsctl.settings import Service


def backup_config(service: Service) -> Any:
    if service.database is None or service.database.backup is None:
        raise UsageError(f"service {service.name} has no database.backup block", "add {provider: rds|pgbackrest, …}")
    return service.database.backup


def rds_for(ctx: Context, env: str) -> Rds:
    from opsctl.integrations.rds import Rds

    aws = ctx.integrations_for(env).aws
    clients = ctx.clients.get("aws", env=env)

    def client_for(region: str) -> Any:
        return clients.client("rds", region=region, endpoint_url=aws.endpoint_url, profile=aws.profile)

    return Rds(client_for, region=aws.region, secondary_region=aws.secondary_region)


def rds_inventory(ctx: Context, service: Service, env: str, now: datetime) -> Inventory:
    config = backup_config(service)
    if not config.instance:
        raise UsageError(f"database.backup of {service.name} (rds) needs 'instance'")
    rds = rds_for(ctx, env)
    instance = rds.require(config.instance)
    window = rds.window(config.instance, now=now)
    inv = Inventory("rds", config.instance, earliest=window.earliest, latest=window.latest, window_basis=window.basis)
    for snap in rds.snapshots(config.instance):
        if snap.status not in ("available", "copying", "creating"):
            continue
        inv.backups.append(Item(snap.id, snap.type, snap.created_at, snap.created_at,
                                (snap.size_gb or 0) * 1024**3 or None, snap.region, snap.encrypted))  # fmt: skip
    retention = int(instance.get("BackupRetentionPeriod") or 0)
    inv.retention_days, inv.retention_basis = float(retention), "BackupRetentionPeriod of the automated backups"
    manual = [b for b in inv.backups if b.type == "manual"]
    if manual:
        inv.retention_basis += f"; {len(manual)} manual snapshot(s) kept until deleted"
    if rds.secondary_region and rds.secondary_region != rds.region:
        for snap in rds.snapshots(config.instance, region=rds.secondary_region):
            if snap.status == "available":
                inv.copies.append(Item(snap.id, snap.type, snap.created_at, snap.created_at, None, snap.region,
                                       snap.encrypted and bool(snap.kms_key)))  # fmt: skip
        inv.copy_evidence = f"snapshot copies of {config.instance} in {rds.secondary_region}"
    else:
        inv.copy_evidence = "no integrations.aws.secondary_region configured"
    return inv


def inventory(ctx: Context, service: Service, env: str, now: datetime) -> Inventory:
    config = backup_config(service)
    if config.provider == "rds":
        return rds_inventory(ctx, service, env, now)
    from opsctl.backups.pgbackrest_source import pgbackrest_inventory

    return pgbackrest_inventory(ctx, service, env, now)
