"""The embedded state store: one SQLite file in WAL mode, shared safely by several processes.

Every write runs in ``BEGIN IMMEDIATE`` (the database write lock is taken up
front, waiting up to the busy timeout), so a lock acquisition is one atomic
check-and-set across processes.  Instants are stored as fixed-width UTC text
(``2026-11-26T10:00:00.000000Z``), which sorts and compares correctly as text.

A write that fails rolls back (SQLite may already have done so itself) and comes out as one
:class:`~opsctl.errors.UpstreamError`: ``disk full at PATH`` when there is no room (SQLITE_FULL, or
the plain I/O error SQLite reports for EFBIG, the file size limit), ``state store at PATH is
damaged`` for a corrupt file, so that the CLI says what happened instead of "internal error";
that classification lives in :mod:`opsctl.state.failures`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from opsctl.fsutil import ensure_private_dir
from opsctl.state import failures, schema
from opsctl.state import sql as shared
from opsctl.state.base import AuditRecord, ConflictError, Event, LockInfo, Record, RunRecord, Store

log = logging.getLogger("opsctl.state")

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _ts(moment: datetime) -> str:
    return shared.utc(moment).strftime(_TS_FORMAT)


def _dt(text: str) -> datetime:
    return datetime.strptime(text, _TS_FORMAT).replace(tzinfo=UTC)


class _Busy(Exception):
    """The file is busy right now (another process holds a lock the busy handler does not wait for)."""


def _is_busy(exc: BaseException | None) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc).lower() for word in ("database is locked", "database is busy")
    )


class SQLiteStore(Store):
    backend = "sqlite"
    SCHEMA_VERSION = schema.LATEST_VERSION

    def __init__(self, path: Path, *, busy_timeout: float = 10.0, upgrade_to: int | None = None) -> None:
        """Open (creating if needed) the store at ``path`` and upgrade its schema.

        ``upgrade_to`` stops the upgrade at an older version (for tests and tooling).
        """
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self._mutex = threading.RLock()
        try:
            ensure_private_dir(self.path.parent)  # 0700 down from the first missing parent, whatever the umask
            if not self.path.exists():  # audit rows can be sensitive: owner-only from the start (-wal, -shm follow)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            if exc.errno in failures.NO_ROOM:
                raise failures.sqlite_disk_full(self.location, os.strerror(exc.errno)) from exc
            raise failures.sqlite_cannot_open(self.location, exc) from exc
        try:
            self._db = sqlite3.connect(
                self.location, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise failures.sqlite_cannot_open(self.location, exc) from exc
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                self._open(busy_timeout, upgrade_to)
                return
            except _Busy:
                # SQLite answers "database is locked" at once, without its busy handler, while another
                # process recovers the WAL of a killed writer or switches the journal mode: wait, retry.
                if time.monotonic() >= deadline:
                    self._db.close()
                    raise failures.sqlite_cannot_open(
                        self.location, sqlite3.OperationalError("database is locked")
                    ) from None
                time.sleep(0.05)

    def _open(self, busy_timeout: float, upgrade_to: int | None) -> None:
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")  # reads the header: a file that is no database fails here
            self._db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise _Busy() from exc
            self._db.close()
            error = failures.sqlite_error(self.path, exc, opening=True)
            raise (error or failures.sqlite_cannot_open(self.location, exc)) from exc
        try:
            self._migrate(upgrade_to)
            self._version = self.schema_version()
        except BaseException as exc:  # refused (damaged, too new) or failed: no connection left behind
            if _is_busy(exc) or _is_busy(exc.__cause__):
                raise _Busy() from exc
            self._db.close()
            raise

    # ------------------------------------------------------------ plumbing
    def _execute(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._db.execute(sql, tuple(params)).fetchall()]

    def _raise(self, exc: sqlite3.Error) -> NoReturn:
        """Re-raise ``exc`` as what it means for the user (see :func:`failures.sqlite_error`)."""
        error = failures.sqlite_error(self.path, exc)
        if error is None:
            raise exc
        raise error from exc

    def _rollback(self) -> None:
        """Roll back if a transaction is still open: on a full disk or an I/O error SQLite has
        already rolled it back itself, and a second ROLLBACK would only hide why."""
        if not self._db.in_transaction:
            return
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("could not roll back a failed write to %s: %s", self.location, exc)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the database write lock from its first statement.

        A failure rolls it back; SQLite errors that are not a bug come out as :class:`UpstreamError`,
        a constraint violation as itself (callers turn it into a ``ConflictError``)."""
        with self._mutex:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._raise(exc)
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._rollback()
                raise
            except sqlite3.Error as exc:
                self._rollback()
                self._raise(exc)
            except BaseException:
                self._rollback()
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._mutex:
            try:
                return self._db.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                self._raise(exc)

    def _migrate(self, target: int | None) -> None:
        current = self.schema_version()
        schema.check_version(current, self.location)
        if current >= (schema.LATEST_VERSION if target is None else target) and current > 0:
            return
        with self._tx():
            schema.upgrade(self._execute, "sqlite", self.location, target)

    def schema_version(self) -> int:
        with self._mutex:
            exists = self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (schema.META_TABLE,))
            if not exists:
                return 0
            try:
                return schema.read_version(self._execute, "sqlite", self.location)
            except sqlite3.Error as exc:
                self._raise(exc)

    def close(self) -> None:
        with self._mutex:
            self._db.close()

    # --------------------------------------------------------------- audit
    def add_audit(self, record: AuditRecord) -> int:
        has_run_id = self._version >= 3
        with self._tx() as db:
            cursor = db.execute(
                shared.audit_insert("?", run_id=has_run_id),
                shared.audit_values(record, _ts(record.at), int(record.dry_run), run_id=has_run_id),
            )
            return int(cursor.lastrowid or 0)

    def list_audit(
        self, *, service: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        query, params = shared.audit_select(
            "?", service=service, since=None if since is None else _ts(since), limit=limit
        )
        rows = self._read(query, params)
        return [
            AuditRecord(
                at=_dt(r["at"]), user=r["username"], host=r["host"], command=r["command"], service=r["service"],
                env=r["env"], args=json.loads(r["args"]), outcome=r["outcome"], dry_run=bool(r["dry_run"]),
                trace_id=r["trace_id"], exit_code=r["exit_code"], message=r["message"], id=r["id"],
                run_id=r["run_id"] if "run_id" in r.keys() else None,
            )
            for r in reversed(rows)
        ]  # fmt: skip

    # --------------------------------------------------------------- locks
    @staticmethod
    def _lock(row: sqlite3.Row) -> LockInfo:
        return LockInfo(
            key=row["key"], token=row["token"], user=row["username"], host=row["host"], pid=row["pid"],
            command=row["command"], acquired_at=_dt(row["acquired_at"]), expires_at=_dt(row["expires_at"]),
        )  # fmt: skip

    def acquire_lock(self, info: LockInfo) -> LockInfo | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM locks WHERE key = ?", (info.key,)).fetchone()
            if row is not None and row["token"] != info.token and row["expires_at"] > _ts(info.acquired_at):
                return self._lock(row)
            db.execute(
                "INSERT INTO locks (key, token, username, host, pid, command, acquired_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET token = excluded.token,"
                " username = excluded.username, host = excluded.host, pid = excluded.pid,"
                " command = excluded.command, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at",
                (
                    info.key, info.token, info.user, info.host, info.pid, info.command,
                    _ts(info.acquired_at), _ts(info.expires_at),
                ),
            )  # fmt: skip
        return None

    def renew_lock(self, key: str, token: str, ttl: timedelta, now: datetime) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE locks SET expires_at = ? WHERE key = ? AND token = ? AND expires_at > ?",
                (_ts(now + ttl), key, token, _ts(now)),
            )
            return cursor.rowcount > 0

    def release_lock(self, key: str, token: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM locks WHERE key = ? AND token = ?", (key, token)).rowcount > 0

    def get_lock(self, key: str, now: datetime) -> LockInfo | None:
        rows = self._read("SELECT * FROM locks WHERE key = ? AND expires_at > ?", (key, _ts(now)))
        return self._lock(rows[0]) if rows else None

    def list_locks(self, now: datetime) -> list[LockInfo]:
        return [self._lock(r) for r in self._read("SELECT * FROM locks WHERE expires_at > ? ORDER BY key", (_ts(now),))]

    def break_lock(self, key: str) -> LockInfo | None:
        with self._tx() as db:
            row = db.execute("DELETE FROM locks WHERE key = ? RETURNING *", (key,)).fetchone()
        return self._lock(row) if row is not None else None

    # ------------------------------------------------------------- records
    @staticmethod
    def _record(row: sqlite3.Row) -> Record:
        return Record(
            kind=row["kind"], id=row["id"], service=row["service"], status=row["status"],
            data=json.loads(row["data"]), key=row["key"], version=row["version"],
            created_at=_dt(row["created_at"]), updated_at=_dt(row["updated_at"]),
        )  # fmt: skip

    def create_record(self, record: Record) -> Record:
        now = datetime.now(UTC)
        created = shared.utc(record.created_at or now)
        updated = shared.utc(record.updated_at or created)
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO records (kind, id, key, service, status, data, version, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.kind, record.id, record.key, record.service, record.status, shared.dumps(record.data),
                        record.version, _ts(created), _ts(updated),
                    ),
                )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"{record.kind} {record.id} already exists") from exc
        return replace(record, created_at=created, updated_at=updated)

    def get_record(self, kind: str, id: str) -> Record | None:
        rows = self._read("SELECT * FROM records WHERE kind = ? AND id = ?", (kind, id))
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
            "?", kind, service=service, key=key, statuses=statuses, limit=limit, id_order="id"
        )
        if found is None:
            return []
        return [self._record(r) for r in self._read(*found)]

    def update_record(self, record: Record) -> Record:
        now = datetime.now(UTC)
        found = None
        with self._tx() as db:
            row = db.execute(
                "UPDATE records SET key = ?, service = ?, status = ?, data = ?, version = version + 1,"
                " updated_at = ? WHERE kind = ? AND id = ? AND version = ? RETURNING version, created_at",
                (
                    record.key, record.service, record.status, shared.dumps(record.data), _ts(now),
                    record.kind, record.id, record.version,
                ),
            ).fetchone()  # fmt: skip
            if row is None:
                found = db.execute(
                    "SELECT version FROM records WHERE kind = ? AND id = ?", (record.kind, record.id)
                ).fetchone()
        if row is None:
            if found is None:
                raise ConflictError(f"{record.kind} {record.id} does not exist")
            raise ConflictError(
                f"{record.kind} {record.id} changed since it was read (version {record.version}, now {found[0]})"
            )
        return replace(record, version=row["version"], created_at=_dt(row["created_at"]), updated_at=now)

    def add_event(self, event: Event) -> Event:
        at = shared.utc(event.at)
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO events (kind, record_id, at, author, type, data) VALUES (?, ?, ?, ?, ?, ?)",
                (event.kind, event.record_id, _ts(at), event.author, event.type, shared.dumps(event.data)),
            )
            return replace(event, at=at, seq=int(cursor.lastrowid or 0))

    def list_events(self, kind: str, record_id: str) -> list[Event]:
        rows = self._read("SELECT * FROM events WHERE kind = ? AND record_id = ? ORDER BY seq", (kind, record_id))
        return [
            Event(
                kind=r["kind"], record_id=r["record_id"], at=_dt(r["at"]), author=r["author"], type=r["type"],
                data=json.loads(r["data"]), seq=r["seq"],
            )
            for r in rows
        ]  # fmt: skip

    # ---------------------------------------------------------------- runs
    @staticmethod
    def _run(row: sqlite3.Row) -> RunRecord:
        values: dict[str, Any] = {name: row[name] for name in shared.RUN_COLUMNS}
        for name in shared.RUN_JSON:
            values[name] = json.loads(values[name])
        for name in ("started_at", "heartbeat_at", "finished_at"):
            values[name] = None if values[name] is None else _dt(values[name])
        return RunRecord(**values)

    def create_run(self, run: RunRecord) -> None:
        try:
            with self._tx() as db:
                db.execute(shared.run_insert("?", "?"), shared.run_values(run, shared.RUN_COLUMNS, _ts))
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"run {run.id} already exists") from exc

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        return self._run(rows[0]) if rows else None

    def list_runs(
        self,
        *,
        service: str | None = None,
        env: str | None = None,
        states: list[str] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        found = shared.runs_select("?", service=service, env=env, states=states, limit=limit)
        return [] if found is None else [self._run(r) for r in self._read(*found)]

    def _changed(self, query: str, values: list[Any]) -> bool:
        with self._tx() as db:
            return db.execute(query, values).rowcount > 0

    def update_run(self, run: RunRecord) -> bool:
        values = [*shared.run_values(run, shared.RUN_MUTABLE, _ts), run.id, run.token]
        return self._changed(shared.run_update("?", "?"), values)

    def heartbeat_run(self, run_id: str, token: str, now: datetime, progress: dict[str, Any] | None) -> bool:
        extra = [] if progress is None else [shared.dumps(progress)]
        query = shared.run_heartbeat("?", "?", progress=progress is not None)
        return self._changed(query, [_ts(now), *extra, run_id, token])

    def takeover_run(self, run: RunRecord, expected_token: str, stale_before: datetime) -> bool:
        values = [*shared.run_values(run, shared.RUN_DRIVER, _ts), run.id, expected_token, _ts(stale_before)]
        return self._changed(shared.run_takeover("?", "?"), values)
