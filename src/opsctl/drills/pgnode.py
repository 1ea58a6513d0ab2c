"""What a failover drill does to PostgreSQL servers, over plain connections: read a standby's
replication state and lag, fence a primary (no new writes), promote a standby, prove a server
takes a write, and the marker sequence the RPO is measured with.

Fencing is per database: ``ALTER DATABASE … SET default_transaction_read_only = on`` and the
database's other client sessions terminated (new sessions are read-only, open ones are gone).
That works for a superuser and for a database owner on RDS alike; because the setting is in the
catalog it replicates, so a promoted standby has it cleared right after its promotion."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from opsctl.errors import FailedError, UpstreamError

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    import psycopg

MARKERS = "opsctl_drill_markers"
CONNECT_TIMEOUT = 5


def connect(dsn: str, what: str) -> psycopg.Connection[Any]:
    import psycopg

    from opsctl.migrate.db import first_line, location

    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise UpstreamError(f"cannot connect to the {what} ({location(dsn)}): {first_line(exc)}") from None


@contextmanager
def sql_errors(what: str) -> Iterator[None]:
    """A database error (a lost connection, a refusal) as one line naming what was being done."""
    import psycopg

    from opsctl.migrate.db import first_line

    try:
        yield
    except psycopg.Error as exc:
        raise UpstreamError(f"{what}: {first_line(exc)}") from None


def _sql(what: str) -> Callable[[F], F]:
    """The function's database errors as one line (see :func:`sql_errors`)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with sql_errors(what):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def _one(conn: psycopg.Connection[Any], query: str, *args: Any) -> Any:
    row = conn.execute(query.encode() if not args else query, args or None).fetchone()
    return row[0] if row else None


@dataclass
class Standby:
    in_recovery: bool
    streaming: bool
    receiver: str | None  # pg_stat_wal_receiver.status
    sender_host: str | None
    lag_bytes: int | None  # the primary's current WAL position minus what the standby replayed
    lag_seconds: float | None  # the primary's replay_lag for its streaming standbys (0 when caught up)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@_sql("reading the replication state")
def standby_state(primary: psycopg.Connection[Any], replica: psycopg.Connection[Any]) -> Standby:
    in_recovery = bool(_one(replica, "SELECT pg_is_in_recovery()"))
    row = replica.execute("SELECT status, sender_host FROM pg_stat_wal_receiver").fetchone()
    receiver, sender = (row[0], row[1]) if row else (None, None)
    lag_bytes = lag_seconds = None
    if in_recovery:
        replayed = _one(replica, "SELECT pg_last_wal_replay_lsn()::text")
        if replayed is not None:
            lag_bytes = int(_one(primary, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", replayed))
            lag_bytes = max(0, lag_bytes)
        lag = _one(primary, "SELECT max(extract(epoch FROM replay_lag)) FROM pg_stat_replication"
                            " WHERE state = 'streaming'")  # fmt: skip
        lag_seconds = 0.0 if lag_bytes == 0 else float(lag or 0.0)
    return Standby(in_recovery, receiver == "streaming", receiver, sender, lag_bytes, lag_seconds)


@_sql("reading the role's privileges")
def privileges(conn: psycopg.Connection[Any]) -> list[str]:
    """What the connection's role lacks to fence this database (empty: nothing)."""
    row = conn.execute(
        "SELECT r.rolsuper, pg_get_userbyid(d.datdba) = current_user,"
        " pg_has_role(current_user, 'pg_signal_backend', 'member')"
        " FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()"
    ).fetchone()
    if row is None:
        return ["cannot read its own role"]
    superuser, owner, signal = (bool(v) for v in row)
    missing = []
    if not (superuser or owner):
        missing.append("owner of the database or superuser (to set it read-only)")
    if not (superuser or signal):
        missing.append("pg_signal_backend (to end the open sessions)")
    return missing


@_sql("reading the role's privileges")
def can_promote(conn: psycopg.Connection[Any]) -> bool:
    return bool(_one(conn, "SELECT has_function_privilege('pg_promote(boolean, integer)', 'execute')"))


def _database(conn: psycopg.Connection[Any]) -> Any:
    from psycopg import sql

    return sql.Identifier(str(_one(conn, "SELECT current_database()")))


def fence(conn: psycopg.Connection[Any]) -> int:
    """No new writes in this database: new sessions are read-only, the others are ended.
    Returns how many sessions were ended."""
    from psycopg import sql

    with sql_errors("fencing the old primary"):
        conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(_database(conn)))
        ended = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchone()
    return int(ended[0]) if ended else 0


def unfence(conn: psycopg.Connection[Any]) -> None:
    """Writable again (a session opened while fenced is read-only itself: it says otherwise first)."""
    from psycopg import sql

    with sql_errors("lifting the fence"):
        conn.execute("SET default_transaction_read_only = off")
        conn.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(_database(conn)))


def promote(conn: psycopg.Connection[Any], timeout: float) -> None:
    """``pg_promote`` and wait for the end of recovery (a standby only)."""
    import psycopg

    from opsctl.migrate.db import first_line

    try:
        if not _one(conn, "SELECT pg_is_in_recovery()"):
            raise FailedError("the replica is not in recovery: it is not a standby (promoted already?)")
        done = _one(conn, "SELECT pg_promote(true, %s)", max(1, int(timeout)))
    except psycopg.Error as exc:
        raise UpstreamError(f"pg_promote on the replica failed: {first_line(exc)}") from None
    if not done:
        raise FailedError(f"the replica did not finish its promotion within {timeout:.0f}s")


@dataclass(frozen=True)
class Marker:
    seq: int
    at: datetime


@_sql("creating the marker table")
def ensure_markers(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MARKERS} (run_id text NOT NULL, seq int NOT NULL,"
        " written_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run_id, seq))"
    )


@_sql("writing a marker")
def write_marker(conn: psycopg.Connection[Any], run_id: str, seq: int) -> Marker:
    row = conn.execute(
        f"INSERT INTO {MARKERS} (run_id, seq) VALUES (%s, %s) RETURNING written_at", (run_id, seq)
    ).fetchone()
    assert row is not None
    return Marker(seq, row[0])


@_sql("reading the markers")
def markers(conn: psycopg.Connection[Any], run_id: str) -> list[Marker]:
    rows = conn.execute(
        f"SELECT seq, written_at FROM {MARKERS} WHERE run_id = %s AND seq > 0 ORDER BY seq", (run_id,)
    ).fetchall()
    return [Marker(int(seq), at) for seq, at in rows]


@_sql("reading the server's clock")
def now(conn: psycopg.Connection[Any]) -> datetime:
    return _one(conn, "SELECT clock_timestamp()")  # type: ignore[no-any-return]


@_sql("writing on the new primary")
def proof_write(conn: psycopg.Connection[Any], run_id: str) -> datetime:
    """A committed write on this server (the marker table, seq 0): the moment it succeeded."""
    row = conn.execute(
        f"INSERT INTO {MARKERS} (run_id, seq) VALUES (%s, 0) ON CONFLICT (run_id, seq)"
        " DO UPDATE SET written_at = clock_timestamp() RETURNING written_at",
        (run_id,),
    ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]
