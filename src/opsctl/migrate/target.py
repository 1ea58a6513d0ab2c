"""Which database and which folder a migration command works on (``database.dsn``,
``database.migrations`` relative to the config file, ``--dir``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.settings import Service


@dataclass
class Target:
    service: Service
    env: str
    folder: Path | None

    @property
    def name(self) -> str:
        return self.service.name


def config_dir(ctx: Context) -> Path:
    path = ctx.source.path
    return path.parent if path is not None else Path.cwd()


def resolve(ctx: Context, service: str, directory: Path | None = None, *, need_folder: bool = True) -> Target:
    svc = ctx.service(service)
    env = ctx.env
    if svc.database is None:
        raise UsageError(f"service {svc.name} has no database block in {env}", "add database.dsn to its config")
    folder = directory
    if folder is None and svc.database.migrations:
        folder = config_dir(ctx) / svc.database.migrations
    if folder is None and need_folder:
        raise UsageError(f"service {svc.name} has no database.migrations folder", "set it in the config or pass --dir")
    return Target(svc, env, folder)


def changes_dir(ctx: Context, target: Target) -> Path | None:
    db = target.service.database
    if db is not None and db.changes:
        return config_dir(ctx) / db.changes
    return target.folder / "changes" if target.folder is not None else None
