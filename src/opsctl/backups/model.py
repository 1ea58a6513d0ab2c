"""What a provider reports, in one shape: backups, the restorable window, copies, retention."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Item:
    label: str
    type: str  # pgBackRest: full | diff | incr; RDS: automated | manual (snapshots)
    started_at: datetime | None
    stopped_at: datetime | None
    size: int | None  # bytes
    where: str  # repo1, eu-central-1, …
    encrypted: bool = False
    daily: bool = True  # counts as a daily backup (full/diff, snapshots); incrementals do not

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "type": self.type, "started_at": self.started_at, "stopped_at": self.stopped_at,
            "size": self.size, "where": self.where, "encrypted": self.encrypted,
        }  # fmt: skip


@dataclass
class Inventory:
    provider: str
    source: str  # the stanza or the instance
    backups: list[Item] = field(default_factory=list)
    earliest: datetime | None = None
    latest: datetime | None = None
    window_basis: str = ""
    copies: list[Item] = field(default_factory=list)  # encrypted copies elsewhere (another region / repo)
    copy_evidence: str = ""  # what was looked at for copies
    retention_days: float | None = None  # what the provider is configured to keep
    retention_basis: str = ""
