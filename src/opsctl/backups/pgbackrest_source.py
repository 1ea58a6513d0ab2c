"""A pgBackRest stanza as an :class:`Inventory`: its backups (from ``info --output=json``), the
window (the oldest backup's end → the newest archived WAL, from ``pg_stat_archiver`` on the
primary), the repositories its config file declares (type, S3 region, cipher, retention)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.backups.model import Inventory, Item
from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.settings import Service

MAX_CONFIG = 1 << 20


def read_config(path: str | None, stanza: str) -> dict[str, str]:
    """The options that apply to ``stanza``: [global], then [global:…] sections, then [stanza]."""
    if path is None:
        path = "/etc/pgbackrest/pgbackrest.conf"
    try:
        file = Path(path).expanduser()
        if file.stat().st_size > MAX_CONFIG:
            raise UsageError(f"{path}: too large for a pgBackRest config")
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read the pgBackRest config {path}: {exc.strerror or exc}") from None
    sections: dict[str, dict[str, str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            sections.setdefault(current, {})
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            sections[current][key.strip()] = value.strip()
    merged: dict[str, str] = {}
    for name in ("global", *(s for s in sections if s.startswith("global:")), stanza):
        merged.update(sections.get(name, {}))
    return merged


def repos(options: dict[str, str]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for key, value in options.items():
        match = re.fullmatch(r"repo(\d+)-(.+)", key)
        if match:
            out.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return out


def _at(epoch: Any) -> datetime | None:
    return datetime.fromtimestamp(int(epoch), UTC) if isinstance(epoch, int | float) else None


def pgbackrest_inventory(ctx: Context, service: Service, env: str, now: datetime) -> Inventory:
    from opsctl.backups.provider import PgBackRestProvider
    from opsctl.backups.restore import Options

    config = service.database.backup if service.database else None
    assert config is not None
    provider = PgBackRestProvider(ctx, service, config, Options(to="latest"))
    options = read_config(provider.repo.config, config.stanza or "")
    declared = repos(options)
    primary_region = ctx.integrations_for(env).aws.region
    info = provider.repo.info()
    inv = Inventory("pgbackrest", config.stanza or "")
    by_repo: dict[int, list[Item]] = {}
    for entry in info.get("backup", []):
        timestamp = entry.get("timestamp", {})
        key = int((entry.get("database") or {}).get("repo-key", 1))
        repo = declared.get(key, {})
        where = (
            f"repo{key} ({repo.get('type', 'posix')}" + (f" {repo['s3-region']}" if repo.get("s3-region") else "") + ")"
        )
        cipher = repo.get("cipher-type", "none")
        kind = str(entry.get("type", ""))
        item = Item(str(entry.get("label")), kind, _at(timestamp.get("start")), _at(timestamp.get("stop")),
                    (entry.get("info") or {}).get("size"), where, cipher not in ("", "none"), kind in ("full", "diff"))  # fmt: skip
        by_repo.setdefault(key, []).append(item)
    first = min(by_repo, default=1)
    inv.backups = by_repo.get(first, [])
    inv.earliest = min((b.stopped_at for b in inv.backups if b.stopped_at), default=None)
    latest, basis = provider._archived_until()
    inv.latest, inv.window_basis = latest, f"info --output=json and {basis}"
    for key, items in sorted(by_repo.items()):
        if key == first:
            continue
        region = declared.get(key, {}).get("s3-region")
        other_region = region is None or region != primary_region
        inv.copies.extend(i for i in items if other_region)
    described = [f"repo{k} ({r.get('type', 'posix')}, {r.get('s3-region', 'no region')},"
                 f" cipher {r.get('cipher-type', 'none')})" for k, r in sorted(declared.items())]  # fmt: skip
    inv.copy_evidence = "repositories: " + ("; ".join(described) or "only the default repo1")
    repo1 = declared.get(first, {})
    if repo1.get("retention-full-type") == "time" and repo1.get("retention-full", "").isdigit():
        inv.retention_days = float(repo1["retention-full"])
        inv.retention_basis = f"repo{first}-retention-full={repo1['retention-full']} (time)"
    else:
        inv.retention_basis = (
            f"repo{first}-retention-full={repo1.get('retention-full', 'unset')} (count of full backups)"
        )
    return inv
