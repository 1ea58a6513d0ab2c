"""What was applied: opsctl's own table (``opsctl_migrations.applied``: id, checksum, who, when,
duration, and how many segments of a file are done) and Drizzle's (``drizzle.__drizzle_migrations``:
hash, created_at = the journal's ``when``), read together so that status works on a database
Drizzle already manages, and written together so that drizzle-kit keeps working afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsctl.migrate.db import Database
    from opsctl.migrate.source import Migration

SCHEMA = "opsctl_migrations"
DRIZZLE_SCHEMA, DRIZZLE_TABLE = "drizzle", "__drizzle_migrations"

_CREATE = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.applied (
        id text PRIMARY KEY,
        checksum text NOT NULL,
        state text NOT NULL DEFAULT 'applied' CHECK (state IN ('applied', 'partial')),
        segments_done integer NOT NULL DEFAULT 0,
        segments integer NOT NULL DEFAULT 0,
        applied_by text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        duration_ms bigint,
        run_id text
    )""",
)


@dataclass
class Applied:
    id: str
    checksum: str
    applied_at: datetime | None
    applied_by: str
    source: str  # "opsctl" | "drizzle"
    state: str = "applied"
    segments_done: int = 0
    duration_ms: int | None = None
    when: int | None = None  # Drizzle's created_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "checksum": self.checksum, "applied_at": self.applied_at, "applied_by": self.applied_by,
            "source": self.source, "state": self.state, "duration_ms": self.duration_ms,
        }  # fmt: skip


def ensure(db: Database) -> None:
    for statement in _CREATE:
        db.conn.execute(statement)


def drizzle_columns(db: Database) -> list[str]:
    rows = db.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (DRIZZLE_SCHEMA, DRIZZLE_TABLE),
    )
    return [r[0] for r in rows]


def ensure_drizzle(db: Database) -> None:
    """Drizzle's own table, as drizzle-kit creates it (so that its migrator sees what opsctl applied)."""
    db.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {DRIZZLE_SCHEMA}")
    db.conn.execute(
        f"CREATE TABLE IF NOT EXISTS {DRIZZLE_SCHEMA}.{DRIZZLE_TABLE}"
        " (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)"
    )


def read(db: Database, migrations: list[Migration]) -> dict[str, Applied]:
    """Every applied migration by id; Drizzle's rows are matched to files by ``when``
    (and by hash when no file has that ``when``: an edited journal)."""
    applied: dict[str, Applied] = {}
    exists = db.value("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.applied",))
    if exists:
        for row in db.rows(
            f"SELECT id, checksum, applied_at, applied_by, state, segments_done, duration_ms FROM {SCHEMA}.applied"
        ):
            applied[row[0]] = Applied(row[0], row[1], row[2], row[3], "opsctl", row[4], row[5], row[6])
    columns = drizzle_columns(db)
    if "hash" in columns and "created_at" in columns:
        by_when = {m.when: m for m in migrations if m.when is not None}
        by_hash = {m.checksum: m for m in migrations}
        for when_raw, digest in db.rows(
            f"SELECT created_at, hash FROM {DRIZZLE_SCHEMA}.{DRIZZLE_TABLE} ORDER BY created_at NULLS FIRST, id"
        ):
            when = int(when_raw) if when_raw is not None else None
            match = (by_when.get(when) if when is not None else None) or by_hash.get(digest)
            ident = match.id if match is not None else f"drizzle@{when}"
            if ident in applied:
                applied[ident].when = when
                continue
            stamp = datetime.fromtimestamp(when / 1000).astimezone() if when else None
            applied[ident] = Applied(ident, digest, stamp, "drizzle-kit", "drizzle", when=when)
    return applied


def record_segment(
    db: Database, m: Migration, *, done: int, total: int, user: str, duration_ms: int, run_id: str | None
) -> None:
    """Inside the segment's transaction (or right after a CONCURRENTLY statement): how far the file is."""
    state = "applied" if done >= total else "partial"
    db.conn.execute(
        f"INSERT INTO {SCHEMA}.applied (id, checksum, state, segments_done, segments, applied_by, duration_ms, run_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET checksum = EXCLUDED.checksum, state = EXCLUDED.state,"
        " segments_done = EXCLUDED.segments_done, segments = EXCLUDED.segments, applied_by = EXCLUDED.applied_by,"
        " applied_at = now(), duration_ms = coalesce(applied.duration_ms, 0) + EXCLUDED.duration_ms,"
        " run_id = EXCLUDED.run_id",
        (m.id, m.checksum, state, done, total, user, duration_ms, run_id),
    )


def record_drizzle(db: Database, m: Migration) -> None:
    columns = drizzle_columns(db)
    if "name" in columns:
        db.conn.execute(
            f"INSERT INTO {DRIZZLE_SCHEMA}.{DRIZZLE_TABLE} (hash, created_at, name) VALUES (%s, %s, %s)",
            (m.checksum, m.when, m.id),
        )
    else:
        db.conn.execute(
            f"INSERT INTO {DRIZZLE_SCHEMA}.{DRIZZLE_TABLE} (hash, created_at) VALUES (%s, %s)", (m.checksum, m.when)
        )
