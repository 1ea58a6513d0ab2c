"""The backup policy rules on inventories at fixed instants: each rule OK and VIOLATION."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsctl.backups.model import Inventory, Item
from opsctl.backups.policy import evaluate
from opsctl.settings.backups import BackupPolicy

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def daily(days: range, where: str = "repo1", encrypted: bool = False, kind: str = "full") -> list[Item]:
    out = []
    for n in days:
        t = NOW - timedelta(days=n, hours=1)
        out.append(Item(f"b{n}", kind, t - timedelta(minutes=10), t, 10**9, where, encrypted, kind != "incr"))
    return out


def healthy() -> Inventory:
    return Inventory(
        "pgbackrest", "auth", backups=daily(range(0, 40)), earliest=NOW - timedelta(days=39),
        latest=NOW - timedelta(minutes=2), window_basis="info", copies=daily(range(0, 3), "repo2 (s3 eu-west-1)", True),
        retention_days=None,
    )  # fmt: skip


def statuses(inv: Inventory) -> list[str]:
    return [r["status"] for r in evaluate(inv, BackupPolicy(), NOW)]


def test_a_healthy_inventory_passes_every_rule() -> None:
    rules = evaluate(healthy(), BackupPolicy(), NOW)
    assert [r["status"] for r in rules] == ["OK"] * 4
    assert "39.0 days" in rules[0]["evidence"] and "repo2 (s3 eu-west-1)" in rules[3]["evidence"]


def test_pitr_too_short_or_stale() -> None:
    inv = healthy()
    inv.earliest = NOW - timedelta(days=6)
    assert statuses(inv)[0] == "VIOLATION"
    inv = healthy()
    inv.latest = NOW - timedelta(hours=3)
    rule = evaluate(inv, BackupPolicy(), NOW)[0]
    assert rule["status"] == "VIOLATION" and "3.0 h old" in rule["evidence"]
    inv.earliest = inv.latest = None
    assert "no restorable window" in evaluate(inv, BackupPolicy(), NOW)[0]["evidence"]


def test_a_missing_day_is_named_and_incrementals_do_not_count() -> None:
    inv = healthy()
    inv.backups = [b for b in inv.backups if b.label != "b3"] + daily(range(3, 4), kind="incr")
    rule = evaluate(inv, BackupPolicy(), NOW)[1]
    assert rule["status"] == "VIOLATION" and "2026-11-24" in rule["evidence"]


def test_kept_30_days_by_age_or_by_retention_setting() -> None:
    inv = healthy()
    inv.backups = daily(range(0, 10))
    assert statuses(inv)[2] == "VIOLATION"
    inv.retention_days, inv.retention_basis = 35, "repo1-retention-full-type=time"
    assert statuses(inv)[2] == "OK"
    inv.retention_days = 7
    assert "retention 7 days" in evaluate(inv, BackupPolicy(), NOW)[2]["evidence"]


def test_copy_must_exist_and_be_encrypted() -> None:
    inv = healthy()
    inv.copies = daily(range(0, 2), "eu-west-1", encrypted=False)
    rule = evaluate(inv, BackupPolicy(), NOW)[3]
    assert rule["status"] == "VIOLATION" and "none encrypted" in rule["evidence"]
    inv.copies, inv.copy_evidence = [], "snapshot copies in eu-west-1"
    assert "none found (snapshot copies in eu-west-1)" in evaluate(inv, BackupPolicy(), NOW)[3]["evidence"]
