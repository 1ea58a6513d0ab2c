"""The service's database as migrations see it: one connection (autocommit; transactions are
explicit), the advisory lock that keeps two runs apart, and DDL executed with ``lock_timeout``
and bounded retries that name who blocks it (``pg_blocking_pids``, read from a second session
while the statement waits)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opsctl.errors import RefusedError, UpstreamError, UsageError

if TYPE_CHECKING:
    from opsctl.context import Context
    from opsctl.settings import Service
    from opsctl.settings.migrate import MigratePolicy

log = logging.getLogger("opsctl.migrate")

ADVISORY_KEY = 0x6F7073637471  # "opsctq": one key per database for 'migrate run'
LOCK_TIMEOUT, SERIALIZATION, DEADLOCK = "55P03", "40001", "40P01"
RETRYABLE = (LOCK_TIMEOUT, SERIALIZATION, DEADLOCK)


def first_line(exc: BaseException) -> str:
    from opsctl.output import printable
    from opsctl.redact import redact

    text = str(exc).strip().splitlines()
    return printable(redact(text[0] if text else type(exc).__name__))[:300]


def location(dsn: str) -> str:
    """host:port/dbname without credentials (for messages)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
        return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"
    except Exception:
        split = urlsplit(dsn)
        return f"{split.hostname or '?'}:{split.port or 5432}{split.path}"


@dataclass
class Blocker:
    pid: int
    user: str
    application: str
    state: str
    query: str
    seconds: float

    def describe(self) -> str:
        from opsctl.output import printable

        query = printable(" ".join(self.query.split()))[:120]
        app = f" {self.application}" if self.application else ""
        return f"pid {self.pid} ({self.user}{app}, {self.state} for {self.seconds:.0f}s: {query})"


def application_name(command: str) -> str:
    import os
    import socket

    from opsctl.operations.audit import current_user

    return f"opsctl {command} {current_user()}@{socket.gethostname()} pid {os.getpid()}"[:63]


class Database:
    """One service database.  ``conn`` is autocommit; :meth:`transaction` opens one explicitly."""

    def __init__(self, dsn: str, *, command: str = "migrate", connect_timeout: int = 10) -> None:
        self.dsn, self.command, self.connect_timeout = dsn, command, connect_timeout
        self.where = location(dsn)
        self._conn: Any = None
        self._watch: Any = None
        self.advisory_held = False

    # ------------------------------------------------------------ connections
    def connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=self.connect_timeout,
                application_name=application_name(self.command),
            )  # fmt: skip
        except psycopg.ProgrammingError as exc:
            raise UsageError(
                f"database.dsn of this service is not a usable connection string: {first_line(exc)}"
            ) from None
        except psycopg.Error as exc:
            raise UpstreamError(
                f"database {self.where} is unreachable: {first_line(exc)}",
                "check that it is up and that database.dsn points at it",
            ) from None

    @property
    def conn(self) -> Any:
        if self._conn is None or self._conn.closed:
            if self.advisory_held:
                self.advisory_held = False
                raise UpstreamError(
                    f"the session holding the migration lock on {self.where} was lost",
                    "nothing more was applied; rerun: applied files are recorded, the rest resumes",
                )
            self._conn = self.connect()
        return self._conn

    def reconnect(self) -> Any:
        with suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        self._conn = None
        return self.conn

    def close(self) -> None:
        for c in (self._conn, self._watch):
            if c is not None:
                with suppress(Exception):
                    c.close()
        self._conn = self._watch = None

    def rows(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(query, params).fetchall())

    def value(self, query: Any, params: Any = None) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.conn.transaction():
            yield self.conn

    # ------------------------------------------------------------ the migration lock
    def lock(self) -> None:
        """Take the database's migration advisory lock (session level) or refuse naming its holder."""
        if self.value("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,)):
            self.advisory_held = True
            return
        holder = self.rows(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename, ''),"
            " coalesce(host(a.client_addr), 'local'), a.backend_start"
            " FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted"
            " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
            (ADVISORY_KEY,),
        )
        who = (
            f"{holder[0][1] or 'a session'} (backend pid {holder[0][0]}, user {holder[0][2]}, from {holder[0][3]},"
            f" since {holder[0][4]:%Y-%m-%d %H:%M:%S %Z})"
            if holder
            else "another session"
        )
        raise RefusedError(
            f"migrations on {self.where} are being run by {who}",
            "wait for it to finish; two migration runs never overlap",
        )

    def unlock(self) -> None:
        if self.advisory_held and self._conn is not None and not self._conn.closed:
            with suppress(Exception):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))
        self.advisory_held = False

    # ------------------------------------------------------------ who blocks us
    def blockers_of(self, pid: int) -> list[Blocker]:
        """Sessions blocking backend ``pid``, read from a second session."""
        import psycopg

        try:
            if self._watch is None or self._watch.closed:
                self._watch = psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=self.connect_timeout,
                    application_name=application_name(self.command + " watch"),
                )  # fmt: skip
            rows = self._watch.execute(
                "SELECT pid, coalesce(usename, ''), coalesce(application_name, ''), coalesce(state, ''),"
                " coalesce(query, ''), extract(epoch FROM now() - coalesce(xact_start, query_start, now()))"
                " FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(%s)) ORDER BY pid",
                (pid,),
            ).fetchall()
        except psycopg.Error as exc:
            log.info("could not read who blocks pid %s: %s", pid, first_line(exc))
            return []
        return [Blocker(int(r[0]), r[1], r[2], r[3], r[4], float(r[5] or 0)) for r in rows]


@contextmanager
def watching(db: Database, after: float) -> Iterator[list[Blocker]]:
    """While the block runs, look once (after ``after`` seconds) at who blocks our session."""
    seen: list[Blocker] = []
    pid = db.conn.info.backend_pid
    done = threading.Event()

    def look() -> None:
        if not done.wait(after):
            seen.extend(db.blockers_of(pid))

    thread = threading.Thread(target=look, name="opsctl-migrate-watch", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join(timeout=5)


@dataclass
class Timeouts:
    lock_ms: int
    statement_ms: int
    retries: int
    backoff: float

    @classmethod
    def of(cls, policy: MigratePolicy) -> Timeouts:
        return cls(
            int(policy.lock_timeout.total_seconds() * 1000),
            int(policy.statement_timeout.total_seconds() * 1000),
            policy.retries,
            policy.retry_backoff.total_seconds(),
        )


def sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", None) or "")


def with_retries(
    db: Database,
    attempt: Callable[[], Any],
    *,
    timeouts: Timeouts,
    what: str,
    sleep: Callable[[float], None],
    on_retry: Callable[[str], None],
    before_retry: Callable[[], None] | None = None,
) -> Any:
    """Run ``attempt`` (one transaction or one CONCURRENTLY statement); when it fails on its lock
    (lock_timeout, deadlock, serialization) or loses its connection, wait and retry, at most
    ``timeouts.retries`` times, saying each time who blocked it.  The last failure is one line."""
    import psycopg

    for n in range(timeouts.retries + 1):
        with watching(db, max(0.05, timeouts.lock_ms / 1000 * 0.6)) as blockers:
            try:
                return attempt()
            except psycopg.Error as exc:
                state = sqlstate(exc)
                lost = isinstance(exc, psycopg.OperationalError) and (db._conn is None or db._conn.closed)
                if state not in RETRYABLE and not lost:
                    raise
                reason = first_line(exc)
        who = "; blocked by " + ", ".join(b.describe() for b in blockers) if blockers else ""
        if n == timeouts.retries:
            raise UpstreamError(
                f"{what}: {reason}{who} — gave up after {timeouts.retries + 1} attempts",
                "nothing of this statement was applied; find the blocking session, then rerun (applied files are kept)",
            )
        wait = min(30.0, timeouts.backoff * (2**n)) * random.uniform(0.8, 1.2)
        on_retry(f"{what}: {reason}{who}; retry {n + 1}/{timeouts.retries} in {wait:.1f}s")
        sleep(wait)
        if lost:
            db.reconnect()
        if before_retry is not None:
            before_retry()
    raise AssertionError("unreachable")


def open_database(ctx: Context, service: Service, *, command: str = "migrate") -> Database:
    if service.database is None:
        raise UsageError(f"service {service.name} has no database block", "add database.dsn to its config")
    dsn = ctx.resolve(service.database.dsn) or ""
    dsn = dsn.strip()
    if not dsn:
        raise UsageError(f"database.dsn of {service.name} resolved to an empty value")
    return Database(dsn, command=command)
