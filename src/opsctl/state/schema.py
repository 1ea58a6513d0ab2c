"""The state store's own schema, as an ordered list of forward-only migrations.

Each migration has one statement list per dialect (``sqlite``, ``postgres``).
The version lives in a one-row ``opsctl_schema`` table.  Opening a store calls
:func:`upgrade` inside a write transaction (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction holding an advisory lock), so concurrent openers
serialise and a half-applied upgrade never persists.  A store written by a
newer opsctl is refused rather than touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from opsctl.errors import UpstreamError, UsageError

Dialect = Literal["sqlite", "postgres"]

# Runs one statement with positional parameters (written with ``?``) and returns its rows.
Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgres


META_TABLE = "opsctl_schema"

_META_DDL = (
    f"CREATE TABLE IF NOT EXISTS {META_TABLE} ("
    " singleton INTEGER PRIMARY KEY CHECK (singleton = 1),"
    " version INTEGER NOT NULL,"
    " updated_at TEXT NOT NULL)"
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "audit log and locks",
        sqlite=(
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at TEXT NOT NULL,
                username TEXT NOT NULL,
                host TEXT NOT NULL,
                command TEXT NOT NULL,
                service TEXT,
                env TEXT,
                args TEXT NOT NULL DEFAULT '{}',
                outcome TEXT NOT NULL,
                dry_run INTEGER NOT NULL DEFAULT 0,
                trace_id TEXT NOT NULL,
                exit_code INTEGER NOT NULL DEFAULT 0,
                message TEXT NOT NULL DEFAULT '')""",
            "CREATE INDEX audit_at ON audit (at)",
            "CREATE INDEX audit_service_at ON audit (service, at)",
            """CREATE TABLE locks (
                key TEXT PRIMARY KEY,
                token TEXT NOT NULL,
                username TEXT NOT NULL,
                host TEXT NOT NULL,
                pid INTEGER NOT NULL,
                command TEXT NOT NULL,
                acquired_at TEXT NOT NULL,
                expires_at TEXT NOT NULL)""",
        ),
        postgres=(
            """CREATE TABLE audit (
                id BIGSERIAL PRIMARY KEY,
                at TIMESTAMPTZ NOT NULL,
                username TEXT NOT NULL,
                host TEXT NOT NULL,
                command TEXT NOT NULL,
                service TEXT,
                env TEXT,
                args JSONB NOT NULL DEFAULT '{}'::jsonb,
                outcome TEXT NOT NULL,
                dry_run BOOLEAN NOT NULL DEFAULT FALSE,
                trace_id TEXT NOT NULL,
                exit_code INTEGER NOT NULL DEFAULT 0,
                message TEXT NOT NULL DEFAULT '')""",
            "CREATE INDEX audit_at ON audit (at)",
            "CREATE INDEX audit_service_at ON audit (service, at)",
            """CREATE TABLE locks (
                key TEXT PRIMARY KEY,
                token TEXT NOT NULL,
                username TEXT NOT NULL,
                host TEXT NOT NULL,
                pid INTEGER NOT NULL,
                command TEXT NOT NULL,
                acquired_at TIMESTAMPTZ NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL)""",
        ),
    ),
    Migration(
        2,
        "records and their events",
        sqlite=(
            """CREATE TABLE records (
                kind TEXT NOT NULL,
                id TEXT NOT NULL,
                key TEXT,
                service TEXT,
                status TEXT NOT NULL,
                data TEXT NOT NULL DEFAULT '{}',
                version INTEGER NOT NULL DEFAULT 1,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (kind, id))""",
            "CREATE INDEX records_kind_key ON records (kind, key)",
            "CREATE INDEX records_kind_service_status ON records (kind, service, status)",
            """CREATE TABLE events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                kind TEXT NOT NULL,
                record_id TEXT NOT NULL,
                at TEXT NOT NULL,
                author TEXT NOT NULL,
                type TEXT NOT NULL,
                data TEXT NOT NULL DEFAULT '{}')""",
            "CREATE INDEX events_record ON events (kind, record_id, seq)",
        ),
        postgres=(
            """CREATE TABLE records (
                kind TEXT NOT NULL,
                id TEXT NOT NULL,
                key TEXT,
                service TEXT,
                status TEXT NOT NULL,
                data JSONB NOT NULL DEFAULT '{}'::jsonb,
                version INTEGER NOT NULL DEFAULT 1,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (kind, id))""",
            "CREATE INDEX records_kind_key ON records (kind, key)",
            "CREATE INDEX records_kind_service_status ON records (kind, service, status)",
            """CREATE TABLE events (
                seq BIGSERIAL PRIMARY KEY,
                kind TEXT NOT NULL,
                record_id TEXT NOT NULL,
                at TIMESTAMPTZ NOT NULL,
                author TEXT NOT NULL,
                type TEXT NOT NULL,
                data JSONB NOT NULL DEFAULT '{}'::jsonb)""",
            "CREATE INDEX events_record ON events (kind, record_id, seq)",
        ),
    ),
    Migration(
        3,
        "runs of operations (heartbeat, takeover) and the run id on audit records",
        sqlite=(
            "ALTER TABLE audit ADD COLUMN run_id TEXT",
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                service TEXT,
                env TEXT NOT NULL,
                state TEXT NOT NULL,
                step TEXT,
                step_index INTEGER NOT NULL DEFAULT 0,
                plan TEXT NOT NULL DEFAULT '[]',
                progress TEXT NOT NULL DEFAULT '{}',
                params TEXT NOT NULL DEFAULT '{}',
                data TEXT NOT NULL DEFAULT '{}',
                driver_user TEXT NOT NULL,
                driver_host TEXT NOT NULL,
                driver_pid INTEGER NOT NULL,
                token TEXT NOT NULL,
                lock_key TEXT,
                lease_seconds REAL NOT NULL,
                started_at TEXT NOT NULL,
                heartbeat_at TEXT NOT NULL,
                finished_at TEXT,
                message TEXT NOT NULL DEFAULT '')""",
            "CREATE INDEX runs_state ON runs (state, started_at)",
            "CREATE INDEX runs_service ON runs (service, started_at)",
        ),
        postgres=(
            "ALTER TABLE audit ADD COLUMN run_id TEXT",
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                service TEXT,
                env TEXT NOT NULL,
                state TEXT NOT NULL,
                step TEXT,
                step_index INTEGER NOT NULL DEFAULT 0,
                plan JSONB NOT NULL DEFAULT '[]'::jsonb,
                progress JSONB NOT NULL DEFAULT '{}'::jsonb,
                params JSONB NOT NULL DEFAULT '{}'::jsonb,
                data JSONB NOT NULL DEFAULT '{}'::jsonb,
                driver_user TEXT NOT NULL,
                driver_host TEXT NOT NULL,
                driver_pid INTEGER NOT NULL,
                token TEXT NOT NULL,
                lock_key TEXT,
                lease_seconds DOUBLE PRECISION NOT NULL,
                started_at TIMESTAMPTZ NOT NULL,
                heartbeat_at TIMESTAMPTZ NOT NULL,
                finished_at TIMESTAMPTZ,
                message TEXT NOT NULL DEFAULT '')""",
            "CREATE INDEX runs_state ON runs (state, started_at)",
            "CREATE INDEX runs_service ON runs (service, started_at)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


class SchemaTooNewError(UsageError):
    """The store was written by a newer opsctl; this one must not touch it."""

    def __init__(self, found: int, known: int, location: str) -> None:
        super().__init__(
            f"state store schema v{found} is newer than this opsctl (v{known}); upgrade opsctl",
            hint=f"the store at {location} was upgraded by a newer opsctl; install that version or newer",
        )
        self.found = found
        self.known = known


class SchemaDamagedError(UpstreamError):
    """The store's version row holds no usable version, or is missing while opsctl's tables exist.

    Exit 4, like a damaged file: the command and the config are right, the store is not.  Treating
    such a store as empty would re-run CREATE TABLE over the audit log, so nothing is touched."""

    def __init__(self, problem: str, location: str, tables: set[str]) -> None:
        guess = matching_version(tables)
        fix = (
            f"its tables are those of v{guess}: if that is right, record version {guess} in its {META_TABLE} row"
            " (singleton = 1), else set the store aside"
            if guess
            else "set the store aside"
        )
        super().__init__(
            f"state store at {location} has a damaged schema version ({problem}); opsctl left it untouched",
            hint=f"{fix}, and keep it: it holds the audit log",
        )
        self.problem = problem


def _created_tables(migration: Migration) -> set[str]:
    return {m.group(1) for m in (_CREATE.match(s) for s in migration.sqlite) if m is not None}


_CREATE = re.compile(r"CREATE TABLE (\w+)")
OWN_TABLES: frozenset[str] = frozenset(name for m in MIGRATIONS for name in _created_tables(m))

# Every table of the current schema (PostgreSQL: the schema on the search_path, created before).
_TABLES: dict[Dialect, str] = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgres": "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()",
}


def tables(execute: Execute, dialect: Dialect) -> set[str]:
    """The names of the tables in the store (opsctl's and any other)."""
    return {str(row[0]) for row in execute(_TABLES[dialect], ())}


def matching_version(present: set[str]) -> int:
    """The newest version whose tables (and those of every older one) are all present; 0 if none."""
    version = 0
    for migration in MIGRATIONS:
        created = _created_tables(migration)
        if not created <= present:
            break
        version = migration.version
    return version


def check_version(found: int, location: str) -> None:
    """Refuse a store whose schema is newer than the migrations this code knows."""
    if found > LATEST_VERSION:
        raise SchemaTooNewError(found, LATEST_VERSION, location)


def _valid(value: Any, execute: Execute, dialect: Dialect, location: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if value is None:
        problem = f"{META_TABLE}.version is NULL"
    else:  # text, a float, a blob: shown short (a damaged row may hold anything)
        shown = repr(value[:40] if isinstance(value, bytes | str) else value)
        problem = f"{META_TABLE}.version is {shown}, not a version number"
    raise SchemaDamagedError(problem, location, tables(execute, dialect))


def read_version(execute: Execute, dialect: Dialect, location: str) -> int:
    """The recorded version; 0 when the meta table has no row (the caller checks that the table exists).

    A row whose version is NULL, not an integer or negative raises :class:`SchemaDamagedError`."""
    rows = execute(f"SELECT version FROM {META_TABLE} WHERE singleton = 1", ())
    return _valid(rows[0][0], execute, dialect, location) if rows else 0


def pending(current: int, target: int | None = None) -> list[Migration]:
    """The migrations to run, in order, to go from ``current`` to ``target`` (default: latest)."""
    goal = LATEST_VERSION if target is None else target
    if not 0 <= goal <= LATEST_VERSION:
        raise ValueError(f"unknown schema version {goal}; this opsctl knows v1..v{LATEST_VERSION}")
    return [m for m in MIGRATIONS if current < m.version <= goal]


def _current(execute: Execute, dialect: Dialect, location: str) -> int:
    """The recorded version, refusing a store that records none (or 0) but holds opsctl's tables."""
    present = tables(execute, dialect)
    if META_TABLE in present:
        rows = execute(f"SELECT version FROM {META_TABLE} WHERE singleton = 1", ())
        current = _valid(rows[0][0], execute, dialect, location) if rows else 0
        missing = "version 0 is recorded" if rows else f"{META_TABLE} has no row"
    else:
        current, missing = 0, f"there is no {META_TABLE} table"
    own = present & OWN_TABLES
    if current == 0 and own:
        raise SchemaDamagedError(f"{missing}, yet it holds the tables {', '.join(sorted(own))}", location, own)
    return current


def upgrade(execute: Execute, dialect: Dialect, location: str, target: int | None = None) -> int:
    """Bring the schema to ``target`` (default: latest). Call inside a write transaction.

    Returns the version afterwards; never downgrades; refuses a newer store, and one whose
    version is damaged (see :class:`SchemaDamagedError`).
    """
    current = _current(execute, dialect, location)
    check_version(current, location)
    execute(_META_DDL, ())
    steps = pending(current, target)
    for migration in steps:
        for statement in migration.statements(dialect):
            execute(statement, ())
    if steps or current == 0:
        version = steps[-1].version if steps else current
        stamp = datetime.now(UTC).isoformat()
        execute(
            f"INSERT INTO {META_TABLE} (singleton, version, updated_at) VALUES (1, ?, ?)"
            " ON CONFLICT (singleton) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            (version, stamp),
        )
        return version
    return current
