"""A store whose schema version row is damaged is refused, on SQLite and PostgreSQL, and left as it was.

Upgrading such a store "from v0" would re-run CREATE TABLE over tables that hold the audit log;
the row is damaged behind the store's back here, with the DDL a careless repair would use.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from opsctl.errors import ExitCode
from opsctl.state.base import AuditRecord
from opsctl.state.schema import LATEST_VERSION, META_TABLE, SchemaDamagedError

if TYPE_CHECKING:
    from conftest import StoreSpec

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)

# how -> (SQLite statements, PostgreSQL statements, the problem named in the error)
DAMAGE: dict[str, tuple[list[str], list[str], str]] = {
    "null": (
        [
            f"DROP TABLE {META_TABLE}",
            f"CREATE TABLE {META_TABLE} (singleton INTEGER PRIMARY KEY, version INTEGER, updated_at TEXT)",
            f"INSERT INTO {META_TABLE} VALUES (1, NULL, 'x')",
        ],
        [f"ALTER TABLE {META_TABLE} ALTER COLUMN version DROP NOT NULL", f"UPDATE {META_TABLE} SET version = NULL"],
        f"{META_TABLE}.version is NULL",
    ),
    "text": (
        [f"UPDATE {META_TABLE} SET version = 'three'"],
        [f"ALTER TABLE {META_TABLE} ALTER COLUMN version TYPE TEXT", f"UPDATE {META_TABLE} SET version = 'three'"],
        f"{META_TABLE}.version is 'three', not a version number",
    ),
    "negative": (
        [f"UPDATE {META_TABLE} SET version = -1"],
        [f"UPDATE {META_TABLE} SET version = -1"],
        f"{META_TABLE}.version is -1, not a version number",
    ),
    "zero": (
        [f"UPDATE {META_TABLE} SET version = 0"],
        [f"UPDATE {META_TABLE} SET version = 0"],
        "version 0 is recorded, yet it holds the tables audit, events, locks, records, runs",
    ),
    "no row": (
        [f"DELETE FROM {META_TABLE}"],
        [f"DELETE FROM {META_TABLE}"],
        f"{META_TABLE} has no row, yet it holds the tables audit, events, locks, records, runs",
    ),
    "no table": (
        [f"DROP TABLE {META_TABLE}"],
        [f"DROP TABLE {META_TABLE}"],
        f"there is no {META_TABLE} table, yet it holds the tables audit, events, locks, records, runs",
    ),
}


def raw(spec: StoreSpec, statements: list[str]) -> list[tuple[Any, ...]]:
    """Run statements on the store behind its back; the rows of the last one."""
    if spec.backend == "sqlite":
        db = sqlite3.connect(spec.location)
        try:
            with db:
                rows = [db.execute(s).fetchall() for s in statements]
        finally:
            db.close()
        return rows[-1]
    import psycopg
    from psycopg import sql

    with psycopg.connect(spec.location, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(spec.schema)))
        with conn.transaction():
            cursors = [conn.execute(s) for s in statements]
            return [tuple(r) for r in cursors[-1].fetchall()] if cursors[-1].description else []


def snapshot(spec: StoreSpec) -> tuple[Any, ...]:
    """What must survive a refused opening: the audit rows and the (damaged) meta rows, if any."""
    audit = raw(spec, ["SELECT id, command, message FROM audit ORDER BY id"])
    meta = raw(spec, [f"SELECT singleton, version FROM {META_TABLE}"]) if has_meta(spec) else None
    return audit, meta


def has_meta(spec: StoreSpec) -> bool:
    if spec.backend == "sqlite":
        return bool(raw(spec, [f"SELECT 1 FROM sqlite_master WHERE name = '{META_TABLE}'"]))
    return bool(
        raw(spec, [f"SELECT 1 FROM pg_tables WHERE schemaname = '{spec.schema}' AND tablename = '{META_TABLE}'"])
    )


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_version_row_is_refused_and_nothing_is_touched(store_spec: StoreSpec, how: str) -> None:
    store = store_spec.open()
    for n in range(3):
        store.add_audit(
            AuditRecord(
                T0, "alice", "box1", "deploy canary", "api", "production", {}, "ok", False, "t", message=f"m{n}"
            )
        )
    store.close()
    sqlite_ddl, postgres_ddl, problem = DAMAGE[how]
    raw(store_spec, sqlite_ddl if store_spec.backend == "sqlite" else postgres_ddl)
    before = snapshot(store_spec)

    with pytest.raises(SchemaDamagedError) as caught:
        store_spec.open()
    error = caught.value
    assert error.exit_code == ExitCode.UPSTREAM
    assert (
        error.message
        == f"state store at {store_spec.location} has a damaged schema version ({problem}); opsctl left it untouched"
    )
    assert error.hint == (
        f"its tables are those of v{LATEST_VERSION}: if that is right, record version {LATEST_VERSION} in its"
        f" {META_TABLE} row (singleton = 1), else set the store aside, and keep it: it holds the audit log"
    )
    assert len(error.lines()) == 1
    assert snapshot(store_spec) == before  # no CREATE TABLE, no version written
    assert [r[2] for r in before[0]] == ["m0", "m1", "m2"]


def test_an_empty_store_at_version_0_is_still_initialised(store_spec: StoreSpec) -> None:
    """Version 0 with none of opsctl's tables is an empty store, not a damaged one."""
    store_spec.open(upgrade_to=0).close()
    assert has_meta(store_spec) and raw(store_spec, [f"SELECT version FROM {META_TABLE}"]) == [(0,)]
    store = store_spec.open()
    try:
        assert store.schema_version() == LATEST_VERSION
        assert store.list_audit() == []
    finally:
        store.close()
