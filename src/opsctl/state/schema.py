"""The state store's own schema, as an ordered list of forward-only migrations.

Each migration has one statement list per dialect (``sqlite``, ``postgres``).
The version lives in a one-row ``opsctl_schema`` table.  Opening a store calls
:func:`upgrade` inside a write transaction (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction holding an advisory lock), so concurrent openers
serialise and a half-applied upgrade never persists.  A store written by a
newer opsctl is refused rather than touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from opsctl.errors import UsageError

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


def check_version(found: int, location: str) -> None:
    """Refuse a store whose schema is newer than the migrations this code knows."""
    if found > LATEST_VERSION:
        raise SchemaTooNewError(found, LATEST_VERSION, location)


def read_version(execute: Execute) -> int:
    """The recorded version; 0 for a store without the meta table or its row."""
    rows = execute(f"SELECT version FROM {META_TABLE} WHERE singleton = 1", ())
    return int(rows[0][0]) if rows else 0


def pending(current: int, target: int | None = None) -> list[Migration]:
    """The migrations to run, in order, to go from ``current`` to ``target`` (default: latest)."""
    goal = LATEST_VERSION if target is None else target
    if not 0 <= goal <= LATEST_VERSION:
        raise ValueError(f"unknown schema version {goal}; this opsctl knows v1..v{LATEST_VERSION}")
    return [m for m in MIGRATIONS if current < m.version <= goal]


def upgrade(execute: Execute, dialect: Dialect, location: str, target: int | None = None) -> int:
    """Bring the schema to ``target`` (default: latest). Call inside a write transaction.

    Returns the version afterwards; never downgrades; refuses a newer store.
    """
    execute(_META_DDL, ())
    current = read_version(execute)
    check_version(current, location)
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
