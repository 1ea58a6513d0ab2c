"""The manual's backup policy, rule by rule, each OK or VIOLATION with its evidence:
PITR covers at least 7 days; a daily backup exists for each of the last days; backups are kept
30 days; an encrypted copy exists in another region."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsctl.backups.model import Inventory
    from opsctl.settings.backups import BackupPolicy

OK, VIOLATION = "OK", "VIOLATION"


def _at(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%dT%H:%MZ")


def evaluate(inv: Inventory, policy: BackupPolicy, now: datetime) -> list[dict[str, Any]]:
    return [_pitr(inv, policy, now), _daily(inv, policy, now), _kept(inv, policy, now), _copy(inv)]


def _rule(rule: str, ok: bool, evidence: str) -> dict[str, Any]:
    return {"rule": rule, "status": OK if ok else VIOLATION, "evidence": evidence}


def _pitr(inv: Inventory, policy: BackupPolicy, now: datetime) -> dict[str, Any]:
    days = policy.pitr.total_seconds() / 86400
    name = f"pitr covers {days:g} days"
    if inv.earliest is None or inv.latest is None:
        return _rule(name, False, f"no restorable window ({inv.window_basis or 'no backup'})")
    covered = (inv.latest - inv.earliest).total_seconds() / 86400
    stale = now - inv.latest
    ok = inv.earliest <= now - policy.pitr and stale <= policy.max_wal_age
    evidence = f"window {_at(inv.earliest)} → {_at(inv.latest)} ({covered:.1f} days; from {inv.window_basis})"
    if stale > policy.max_wal_age:
        evidence += f"; the latest restorable point is {stale.total_seconds() / 3600:.1f} h old"
    return _rule(name, ok, evidence)


def _daily(inv: Inventory, policy: BackupPolicy, now: datetime) -> dict[str, Any]:
    name = f"daily backup on each of the last {policy.daily_days} days"
    days = {(now - timedelta(days=n)).date() for n in range(1, policy.daily_days + 1)}
    have = {b.stopped_at.date() for b in inv.backups if b.daily and b.stopped_at is not None}
    missing = sorted(days - have)
    if not missing:
        return _rule(name, True, f"{len(days)} of {len(days)} days have one")
    shown = ", ".join(d.isoformat() for d in missing[:7]) + (" …" if len(missing) > 7 else "")
    return _rule(name, False, f"no full/differential backup or snapshot on {shown}")


def _kept(inv: Inventory, policy: BackupPolicy, now: datetime) -> dict[str, Any]:
    days = policy.keep.total_seconds() / 86400
    name = f"backups kept {days:g} days"
    oldest = min((b.stopped_at for b in inv.backups if b.daily and b.stopped_at), default=None)
    age = (now - oldest).total_seconds() / 86400 if oldest else 0.0
    if inv.retention_days is not None and inv.retention_days >= days:
        return _rule(name, True, f"retention {inv.retention_days:g} days ({inv.retention_basis})")
    if oldest is not None and age >= days:
        return _rule(name, True, f"oldest backup {age:.1f} days old ({_at(oldest)})")
    retention = f"retention {inv.retention_days:g} days ({inv.retention_basis})" if inv.retention_days is not None \
        else f"no retention setting found ({inv.retention_basis or '-'})"  # fmt: skip
    return _rule(name, False, f"{retention}; oldest backup {age:.1f} days old")


def _copy(inv: Inventory) -> dict[str, Any]:
    name = "encrypted copy in another region"
    good = [c for c in inv.copies if c.encrypted]
    if good:
        newest = max(good, key=lambda c: c.stopped_at.timestamp() if c.stopped_at else 0.0)
        return _rule(name, True, f"{len(good)} encrypted cop{'y' if len(good) == 1 else 'ies'} in {newest.where},"
                                 f" newest {newest.label} ({_at(newest.stopped_at)})")  # fmt: skip
    plain = [c for c in inv.copies if not c.encrypted]
    if plain:
        return _rule(name, False, f"{len(plain)} cop(ies) in {plain[0].where} but none encrypted")
    return _rule(name, False, f"none found ({inv.copy_evidence or 'no second repository or region configured'})")
