"""The shared state store: tables in one schema of a PostgreSQL database (psycopg 3).

psycopg is imported inside methods only, so ``opsctl --help`` never pays for it.
Schema upgrades run in one transaction holding ``pg_advisory_xact_lock``, so
several opsctl processes opening a fresh database serialise.  Lock acquisition
is one ``INSERT … ON CONFLICT DO UPDATE … WHERE <expired or ours>`` statement.
What a failure means for the user (a bad URL, a full server disk, the server out of reach)
is decided in :mod:`opsctl.state.failures`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from opsctl import redact as redaction
from opsctl.errors import UpstreamError
from opsctl.state import failures
from opsctl.state import schema as migrations
from opsctl.state import sql as shared
from opsctl.state.base import AuditRecord, ConflictError, Event, LockInfo, Record, RunRecord, Store

Row = dict[str, Any]


class PostgresStore(Store):
    backend = "postgres"
    SCHEMA_VERSION = migrations.LATEST_VERSION

    def __init__(
        self, url: str, schema: str = "opsctl", *, connect_timeout: int = 5, upgrade_to: int | None = None
    ) -> None:
        """Connect, create ``schema`` if missing and upgrade the tables in it.

        ``upgrade_to`` stops the upgrade at an older version (for tests and tooling).
        """
        failures.register_password(url)
        self._url = url
        self.schema = schema
        self.location = redaction.redact(url)
        self._timeout = connect_timeout
        self._mutex = threading.RLock()
        digest = hashlib.sha256(f"opsctl-schema:{schema}".encode()).digest()
        self._advisory_key = int.from_bytes(digest[:8], "big", signed=True)
        failures.pg_check_url(url, self.location)
        self._conn: Any = self._connect()
        try:
            self._migrate(upgrade_to)
            self._version = self.schema_version()
        except BaseException:  # refused (damaged, too new) or failed: no session left behind
            self._conn.close()
            raise

    # ------------------------------------------------------------ plumbing
    def _connect(self) -> Any:
        import psycopg
        from psycopg import sql
        from psycopg.rows import dict_row

        try:
            conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._timeout, application_name="opsctl",
                row_factory=dict_row,
            )  # fmt: skip
            conn.execute("SET TIME ZONE 'UTC'")
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        except psycopg.Error as exc:  # a URL libpq refused is exit 2, the server out of reach exit 4
            raise failures.pg_connect_error(self.location, exc) from exc
        return conn

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction on the (re)connected session; connection trouble, a full disk and other
        exhausted server resources become :class:`UpstreamError` (the transaction rolled back)."""
        import psycopg

        with self._mutex:
            if self._conn.closed:
                self._conn = self._connect()
            try:
                with self._conn.transaction():
                    yield self._conn
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if self._conn.broken:
                    self._conn.close()
                raise failures.pg_failure(self.location, exc) from exc

    def _rows(self, query: Any, params: Sequence[Any] = ()) -> list[Row]:
        with self._tx() as conn:
            cursor = conn.execute(query, tuple(params))
            rows: list[Row] = cursor.fetchall() if cursor.description else []
            return rows

    def _execute(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """For schema.upgrade: ``?`` placeholders, plain tuples back."""
        cursor = self._conn.execute(text.replace("?", "%s"), tuple(params)) if params else self._conn.execute(text)
        return [tuple(row.values()) for row in cursor.fetchall()] if cursor.description else []

    def _meta_exists(self) -> bool:
        return bool(
            self._rows(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                (self.schema, migrations.META_TABLE),
            )
        )

    def _migrate(self, target: int | None) -> None:
        from psycopg import sql

        current = self.schema_version()
        migrations.check_version(current, self.location)
        if current > 0 and current >= (migrations.LATEST_VERSION if target is None else target):
            return
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._advisory_key,))
            if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone():
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            migrations.upgrade(self._execute, "postgres", self.location, target)

    def schema_version(self) -> int:
        with self._mutex:
            if not self._meta_exists():
                return 0
            with self._tx():
                return migrations.read_version(self._execute, "postgres", self.location)

    def close(self) -> None:
        with self._mutex:
            self._conn.close()

    # --------------------------------------------------------------- audit
    def add_audit(self, record: AuditRecord) -> int:
        has_run_id = self._version >= 3
        rows = self._rows(
            shared.audit_insert("%s", run_id=has_run_id, json_cast="::jsonb") + " RETURNING id",
            shared.audit_values(record, shared.utc(record.at), record.dry_run, run_id=has_run_id),
        )
        return int(rows[0]["id"])

    def list_audit(
        self, *, service: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        query, params = shared.audit_select(
            "%s", service=service, since=None if since is None else shared.utc(since), limit=limit
        )
        return [
            AuditRecord(
                at=shared.utc(r["at"]), user=r["username"], host=r["host"], command=r["command"], service=r["service"],
                env=r["env"], args=r["args"], outcome=r["outcome"], dry_run=r["dry_run"], trace_id=r["trace_id"],
                exit_code=r["exit_code"], message=r["message"], id=r["id"], run_id=r.get("run_id"),
            )
            for r in reversed(self._rows(query, params))
        ]  # fmt: skip

    # --------------------------------------------------------------- locks
    @staticmethod
    def _lock(r: Row) -> LockInfo:
        return LockInfo(
            key=r["key"], token=r["token"], user=r["username"], host=r["host"], pid=r["pid"],
            command=r["command"], acquired_at=shared.utc(r["acquired_at"]), expires_at=shared.utc(r["expires_at"]),
        )  # fmt: skip

    def acquire_lock(self, info: LockInfo) -> LockInfo | None:
        for _ in range(5):
            with self._tx() as conn:
                # ON CONFLICT locks the existing row even when WHERE is false, so the SELECT
                # below sees the holder that made us fail, not a later one.
                taken = conn.execute(
                    "INSERT INTO locks (key, token, username, host, pid, command, acquired_at, expires_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET"
                    " token = EXCLUDED.token, username = EXCLUDED.username, host = EXCLUDED.host,"
                    " pid = EXCLUDED.pid, command = EXCLUDED.command, acquired_at = EXCLUDED.acquired_at,"
                    " expires_at = EXCLUDED.expires_at"
                    " WHERE locks.expires_at <= EXCLUDED.acquired_at OR locks.token = EXCLUDED.token RETURNING key",
                    (
                        info.key, info.token, info.user, info.host, info.pid, info.command,
                        shared.utc(info.acquired_at), shared.utc(info.expires_at),
                    ),
                ).fetchone()  # fmt: skip
                if taken is not None:
                    return None
                row = conn.execute("SELECT * FROM locks WHERE key = %s", (info.key,)).fetchone()
                if row is not None:
                    return self._lock(row)
        raise UpstreamError(
            f"could not acquire {info.key} in the state store at {self.location}", hint=failures.PG_HINT
        )

    def renew_lock(self, key: str, token: str, ttl: timedelta, now: datetime) -> bool:
        rows = self._rows(
            "UPDATE locks SET expires_at = %s WHERE key = %s AND token = %s AND expires_at > %s RETURNING key",
            (shared.utc(now + ttl), key, token, shared.utc(now)),
        )
        return bool(rows)

    def release_lock(self, key: str, token: str) -> bool:
        return bool(self._rows("DELETE FROM locks WHERE key = %s AND token = %s RETURNING key", (key, token)))

    def get_lock(self, key: str, now: datetime) -> LockInfo | None:
        rows = self._rows("SELECT * FROM locks WHERE key = %s AND expires_at > %s", (key, shared.utc(now)))
        return self._lock(rows[0]) if rows else None

    def list_locks(self, now: datetime) -> list[LockInfo]:
        rows = self._rows('SELECT * FROM locks WHERE expires_at > %s ORDER BY key COLLATE "C"', (shared.utc(now),))
        return [self._lock(r) for r in rows]

    def break_lock(self, key: str) -> LockInfo | None:
        rows = self._rows("DELETE FROM locks WHERE key = %s RETURNING *", (key,))
        return self._lock(rows[0]) if rows else None

    # ------------------------------------------------------------- records
    @staticmethod
    def _record(r: Row) -> Record:
        return Record(
            kind=r["kind"], id=r["id"], service=r["service"], status=r["status"], data=r["data"], key=r["key"],
            version=r["version"], created_at=shared.utc(r["created_at"]), updated_at=shared.utc(r["updated_at"]),
        )  # fmt: skip

    def create_record(self, record: Record) -> Record:
        from psycopg import errors

        created = shared.utc(record.created_at or datetime.now(UTC))
        updated = shared.utc(record.updated_at or created)
        try:
            self._rows(
                "INSERT INTO records (kind, id, key, service, status, data, version, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)",
                (
                    record.kind, record.id, record.key, record.service, record.status, shared.dumps(record.data),
                    record.version, created, updated,
                ),
            )  # fmt: skip
        except errors.UniqueViolation as exc:
            raise ConflictError(f"{record.kind} {record.id} already exists") from exc
        return replace(record, created_at=created, updated_at=updated)

    def get_record(self, kind: str, id: str) -> Record | None:
        rows = self._rows("SELECT * FROM records WHERE kind = %s AND id = %s", (kind, id))
        return self._record(rows[0]) if rows else None

    def find_records(
        self,
        kind: str,
        *,
        service: str | None = None,
        key: str | None = None,
        statuses: list[str] | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        found = shared.records_select(
            "%s", kind, service=service, key=key, statuses=statuses, limit=limit, id_order='id COLLATE "C"'
        )
        if found is None:
            return []
        return [self._record(r) for r in self._rows(*found)]

    def update_record(self, record: Record) -> Record:
        now = datetime.now(UTC)
        with self._tx() as conn:
            row = conn.execute(
                "UPDATE records SET key = %s, service = %s, status = %s, data = %s::jsonb, version = version + 1,"
                " updated_at = %s WHERE kind = %s AND id = %s AND version = %s RETURNING version, created_at",
                (
                    record.key, record.service, record.status, shared.dumps(record.data), now,
                    record.kind, record.id, record.version,
                ),
            ).fetchone()  # fmt: skip
            found = None
            if row is None:
                found = conn.execute(
                    "SELECT version FROM records WHERE kind = %s AND id = %s", (record.kind, record.id)
                ).fetchone()
        if row is None:
            if found is None:
                raise ConflictError(f"{record.kind} {record.id} does not exist")
            raise ConflictError(
                f"{record.kind} {record.id} changed since it was read (version {record.version}, now {found['version']})"
            )
        return replace(record, version=row["version"], created_at=shared.utc(row["created_at"]), updated_at=now)

    def add_event(self, event: Event) -> Event:
        at = shared.utc(event.at)
        rows = self._rows(
            "INSERT INTO events (kind, record_id, at, author, type, data) VALUES (%s, %s, %s, %s, %s, %s::jsonb)"
            " RETURNING seq",
            (event.kind, event.record_id, at, event.author, event.type, shared.dumps(event.data)),
        )
        return replace(event, at=at, seq=int(rows[0]["seq"]))

    def list_events(self, kind: str, record_id: str) -> list[Event]:
        rows = self._rows("SELECT * FROM events WHERE kind = %s AND record_id = %s ORDER BY seq", (kind, record_id))
        return [
            Event(
                kind=r["kind"], record_id=r["record_id"], at=shared.utc(r["at"]), author=r["author"], type=r["type"],
                data=r["data"], seq=r["seq"],
            )
            for r in rows
        ]  # fmt: skip

    # ---------------------------------------------------------------- runs
    @staticmethod
    def _run(r: Row) -> RunRecord:
        values = {name: r[name] for name in shared.RUN_COLUMNS}
        for name in ("started_at", "heartbeat_at", "finished_at"):
            values[name] = None if values[name] is None else shared.utc(values[name])
        return RunRecord(**values)

    def create_run(self, run: RunRecord) -> None:
        from psycopg import errors

        values = shared.run_values(run, shared.RUN_COLUMNS, shared.utc)
        try:
            self._rows(shared.run_insert("%s", "%s::jsonb"), values)
        except errors.UniqueViolation as exc:
            raise ConflictError(f"run {run.id} already exists") from exc

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._rows("SELECT * FROM runs WHERE id = %s", (run_id,))
        return self._run(rows[0]) if rows else None

    def list_runs(
        self,
        *,
        service: str | None = None,
        env: str | None = None,
        states: list[str] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        found = shared.runs_select("%s", service=service, env=env, states=states, limit=limit)
        return [] if found is None else [self._run(r) for r in self._rows(*found)]

    def _changed(self, query: str, values: list[Any]) -> bool:
        return bool(self._rows(query + " RETURNING id", values))

    def update_run(self, run: RunRecord) -> bool:
        values = [*shared.run_values(run, shared.RUN_MUTABLE, shared.utc), run.id, run.token]
        return self._changed(shared.run_update("%s", "%s::jsonb"), values)

    def heartbeat_run(self, run_id: str, token: str, now: datetime, progress: dict[str, Any] | None) -> bool:
        extra = [] if progress is None else [shared.dumps(progress)]
        query = shared.run_heartbeat("%s", "%s::jsonb", progress=progress is not None)
        return self._changed(query, [shared.utc(now), *extra, run_id, token])

    def takeover_run(self, run: RunRecord, expected_token: str, stale_before: datetime) -> bool:
        values = [*shared.run_values(run, shared.RUN_DRIVER, shared.utc), run.id, expected_token]
        return self._changed(shared.run_takeover("%s", "%s::jsonb"), [*values, shared.utc(stale_before)])
