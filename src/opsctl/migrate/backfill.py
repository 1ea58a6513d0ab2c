"""Phase 3 of a column change: filling the new column in batches along the primary key.

Each batch is one short transaction on an autocommit connection: it locks its state row in
``opsctl_migrations.backfill`` and reads the cursor there, finds the key ``n`` rows further
(an index-only scan that stops there), then one statement updates the rows of that key range
that are still NULL — a single index range scan, no per-row lookups, row comparisons so that
composite keys work — and moves the cursor, and the transaction commits.  A process killed at
any moment, or a connection terminated mid-batch, loses at most that uncommitted batch, and the
next run resumes from the committed cursor.  As every batch reads the cursor under ``FOR
UPDATE``, two runs of the same change at once take turns instead of doing the work twice.

The cursor is the last key of the batch as a JSON array (``to_jsonb`` of each key column, or its
text for arrays and composites), passed back to the server as jsonb text and cast there to each
key column's catalog type, so that no key value ever makes a lossy round trip through Python.
Statements that carry the author's expression are sent without bind parameters (it may contain
``%``); the values in them are psycopg literals.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsctl.errors import FailedError, RefusedError, UpstreamError, UsageError
from opsctl.migrate.change import Change, KeyColumn, key_columns

if TYPE_CHECKING:
    from psycopg.sql import Composable, Composed, Identifier

STATE_SCHEMA = "opsctl_migrations"
STATE_TABLE = "backfill"
EXACT_COUNT_LIMIT = 2_000_000  # up to this many rows (estimated), the remaining rows are counted exactly
MAX_BACKOFF = 30.0
# lock modes on the table that conflict with the ROW EXCLUSIVE lock of the batch's UPDATE
_BLOCKING_MODES = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")


@dataclass
class Options:
    batch_size: int = 1000  # the first batch; then adapted toward target_batch_seconds
    min_batch: int = 100
    max_batch: int = 50_000
    target_batch_seconds: float = 0.2
    max_rate: float | None = None  # rows updated per second, at most
    lock_timeout_ms: int = 2000
    statement_timeout_ms: int = 30_000
    retries: int = 5  # consecutive failed attempts retried before giving up
    max_replica_lag_seconds: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.max_batch:
            raise UsageError(f"batch sizes: need 1 <= min_batch ({self.min_batch}) <= max_batch ({self.max_batch})")
        if self.target_batch_seconds <= 0 or (self.max_rate is not None and self.max_rate <= 0):
            raise UsageError("target_batch_seconds and max_rate must be positive")
        if self.lock_timeout_ms < 1 or self.statement_timeout_ms < 1 or self.retries < 0:
            raise UsageError("lock_timeout_ms and statement_timeout_ms must be positive, retries at least 0")


@dataclass
class Progress:
    done_rows: int  # rows this run filled
    total_estimate: int | None  # rows in the table (planner estimate; None before the first ANALYZE)
    remaining: int  # rows still NULL: counted (or estimated) once at the start, minus done_rows
    cursor: list[Any] | None  # the last key committed
    batches: int  # batches this run committed
    rate: float  # rows filled per second this run
    batch_size: int  # the size of the next batch
    note: str | None = None  # what the run is waiting for, when it waits
    finished: bool = False
    elapsed: float = 0.0
    remaining_at_start: int = 0  # rows still NULL when the run started


# ------------------------------------------------------------------ state


def _state_table() -> Identifier:
    from psycopg import sql

    return sql.Identifier(STATE_SCHEMA, STATE_TABLE)


def ensure_state_table(conn: Any) -> None:
    """The schema and the table of backfill state, created once.  Concurrent creators are
    serialized by an advisory lock (two ``CREATE … IF NOT EXISTS`` at once can collide on the
    catalog's unique indexes)."""
    from psycopg import sql

    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{STATE_SCHEMA}.{STATE_TABLE}",)).fetchone()
    if found and found[0]:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('opsctl_migrations.backfill'))")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STATE_SCHEMA)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "change_id text PRIMARY KEY, schema_name text, table_name text, column_name text, cursor jsonb, "
                "rows_done bigint NOT NULL DEFAULT 0, batches bigint NOT NULL DEFAULT 0, "
                "started_at timestamptz, updated_at timestamptz, finished_at timestamptz)"
            ).format(_state_table())
        )


def state(conn: Any, change: Change) -> dict[str, Any] | None:
    """The state row of ``change`` as a dict; None when it never ran (or the table is missing)."""
    from psycopg import sql
    from psycopg.rows import dict_row

    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{STATE_SCHEMA}.{STATE_TABLE}",)).fetchone()
    if not found or not found[0]:
        return None
    cur = conn.cursor(row_factory=dict_row)
    row: dict[str, Any] | None = cur.execute(
        sql.SQL("SELECT * FROM {} WHERE change_id = %s").format(_state_table()), (change.id,)
    ).fetchone()
    return row


def remaining(conn: Any, change: Change) -> int:
    """Rows whose column is still NULL (an exact count: a scan of the table)."""
    from psycopg import sql

    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(
            sql.Identifier(change.schema, change.table), sql.Identifier(change.column)
        )
    ).fetchone()
    return int(row[0]) if row else 0


def _estimate(conn: Any, change: Change, *, exact: bool = False) -> tuple[int | None, int]:
    """(rows in the table, rows still NULL), cheaply unless ``exact``.

    The total is the planner's ``reltuples``.  The NULL rows are counted exactly (one sequential
    scan, well under a second) when the table holds at most :data:`EXACT_COUNT_LIMIT` rows by
    that estimate or was never analyzed; above it, ``null_frac`` of the column's statistics times
    the total (or the total, before the column has statistics): a progress figure, not a proof —
    contract checks with :func:`remaining`.  ``exact`` (whether a finished pass must be run
    again) always counts, without the statement timeout: one scan, however long it takes."""
    row = conn.execute(
        "SELECT r.reltuples::bigint, s.null_frac FROM pg_class r"
        " JOIN pg_namespace n ON n.oid = r.relnamespace"
        " LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = r.relname AND s.attname = %s"
        " WHERE n.nspname = %s AND r.relname = %s",
        (change.column, change.schema, change.table),
    ).fetchone()
    total = int(row[0]) if row and row[0] is not None and row[0] >= 0 else None
    if exact:
        with conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 0")
            return total, remaining(conn, change)
    if total is None or total <= EXACT_COUNT_LIMIT:
        return total, remaining(conn, change)
    null_frac = row[1] if row else None
    return total, int(total * null_frac) if null_frac is not None else total


def _column_exists(conn: Any, change: Change) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_attribute a JOIN pg_class r ON r.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = r.relnamespace"
        " WHERE n.nspname = %s AND r.relname = %s AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (change.schema, change.table, change.column),
    ).fetchone()
    return row is not None


# ------------------------------------------------------------------ the batch statement


def _key_values(key: list[KeyColumn], cursor: str) -> Composable:
    """The key values of a cursor (jsonb text) as constants of the key columns' types: a literal
    the planner folds, so that it estimates the key range from the statistics."""
    from psycopg import sql

    return sql.SQL(", ").join(
        sql.SQL("({}::jsonb ->> {})::{}").format(sql.Literal(cursor), sql.Literal(i), sql.SQL(k.type))
        for i, k in enumerate(key)
    )


def _key_parts(key: list[KeyColumn]) -> tuple[Composable, Composable]:
    """(the key columns, the key as a jsonb array)."""
    from psycopg import sql

    names = [sql.Identifier(k.name) for k in key]
    as_json = sql.SQL(", ").join(
        sql.SQL("to_jsonb({}::text)" if k.category in ("A", "C") else "to_jsonb({})").format(n)
        for k, n in zip(key, names, strict=True)
    )
    return sql.SQL(", ").join(names), sql.SQL("jsonb_build_array({})::text").format(as_json)


def bound_sql(
    change: Change, key: list[KeyColumn], cursor: str | None, limit: int | None, until: str | None = None
) -> Composed:
    """The key ``limit`` rows after ``cursor`` (an index-only range scan that stops there), as
    jsonb text; with ``limit`` None, the last key after the cursor (one step backward on the
    index) — for the final, partial batch.  ``until`` caps the pass at the last key that existed
    when it began: rows inserted later are the dual-write trigger's (a backfill chasing a table
    that grows as fast as it walks would never end)."""
    from psycopg import sql

    cols, as_json = _key_parts(key)
    conditions = []
    if cursor:
        conditions.append(sql.SQL("({}) > ({})").format(cols, _key_values(key, cursor)))
    if until:
        conditions.append(sql.SQL("({}) <= ({})").format(cols, _key_values(key, until)))
    after = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    if limit is None:
        order = sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(k.name)) for k in key)
        return sql.SQL("SELECT {} FROM {}{} ORDER BY {} LIMIT 1").format(
            as_json, sql.Identifier(change.schema, change.table), after, order
        )
    return sql.SQL("SELECT {} FROM {}{} ORDER BY {} OFFSET {} LIMIT 1").format(
        as_json, sql.Identifier(change.schema, change.table), after, cols, sql.Literal(int(limit) - 1)
    )


def batch_sql(change: Change, key: list[KeyColumn], cursor: str | None, last: str) -> Composed:
    """One batch: the rows with keys in (``cursor``, ``last``] that are still NULL get the
    expression — one index range scan, no per-row lookups — and the state row moves its cursor
    to ``last``, in the same statement.  Returns the rows updated.  No bind parameters: the
    expression may contain ``%``."""
    from psycopg import sql

    cols, _ = _key_parts(key)
    lower = sql.SQL("({}) > ({}) AND ").format(cols, _key_values(key, cursor)) if cursor else sql.SQL("")
    leading: Composable = sql.SQL("")
    if len(key) > 1:  # implied by the row comparisons, but estimated far better by the planner
        first = sql.Identifier(key[0].name)
        leading = sql.SQL(" AND {} <= {}").format(first, _key_values(key[:1], last))
        if cursor:
            leading = sql.SQL(" AND {} >= {}{}").format(first, _key_values(key[:1], cursor), leading)
    return sql.SQL(
        "WITH updated AS (UPDATE {table} SET {col} = ({expr})\n"
        "  WHERE {lower}({cols}) <= ({upper}){leading} AND {col} IS NULL RETURNING 1),\n"
        "saved AS (UPDATE {state} SET cursor = {last}::jsonb, rows_done = rows_done + (SELECT count(*) FROM updated),\n"
        "  batches = batches + 1, updated_at = now() WHERE change_id = {change_id} RETURNING 1)\n"
        "SELECT (SELECT count(*) FROM updated), (SELECT count(*) FROM saved)"
    ).format(
        table=sql.Identifier(change.schema, change.table),
        col=sql.Identifier(change.column),
        expr=sql.SQL(change.backfill),
        lower=lower,
        cols=cols,
        upper=_key_values(key, last),
        leading=leading,
        state=_state_table(),
        last=sql.Literal(last),
        change_id=sql.Literal(change.id),
    )


def batch_settings_sql(options: Options) -> Composed:
    """The settings of a batch's transaction: its timeouts, and no sequential scan.

    The planner estimates a row comparison on a composite key from its leading column alone, so
    with few distinct leading values (``(tenant, id)``) a batch of a few thousand rows can look
    like half the table and get a sequential scan — every batch reading the whole table.  The key
    range is always best read through the primary key, so sequential scans are switched off for
    the batch (a table without any index the expression reads still gets one: there is no
    other way)."""
    from psycopg import sql

    return sql.SQL(
        "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}; SET LOCAL enable_seqscan = off"
    ).format(sql.Literal(f"{options.lock_timeout_ms}ms"), sql.Literal(f"{options.statement_timeout_ms}ms"))


# ------------------------------------------------------------------ the run


def _retryable(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError)


def _one_line(exc: BaseException) -> str:
    import psycopg

    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, psycopg.Error) and exc.sqlstate:
        text = f"{text} (SQLSTATE {exc.sqlstate})"
    return text[:300]


class _Runner:
    def __init__(
        self,
        connect: Callable[[], Any],
        change: Change,
        options: Options,
        sleep: Callable[[float], None],
        on_retry: Callable[[str], None] | None,
    ) -> None:
        self.connect, self.change, self.options = connect, change, options
        self.sleep, self.on_retry = sleep, on_retry
        self.conn: Any = None
        self.failures = 0

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def _connection(self) -> Any:
        from psycopg import sql

        if self.conn is not None and (self.conn.closed or self.conn.broken):
            self.close()
        if self.conn is None:
            conn = self.connect()
            self.conn = conn
            conn.autocommit = True
            # bounds for the statements outside a batch (catalog, counts); batches set their own
            conn.execute(
                sql.SQL("SET lock_timeout = {}; SET statement_timeout = {}").format(
                    sql.Literal(f"{self.options.lock_timeout_ms}ms"),
                    sql.Literal(f"{self.options.statement_timeout_ms}ms"),
                )
            )
        return self.conn

    def attempt(self, work: Callable[[Any], Any], *, on_failure: Callable[[BaseException], None] | None = None) -> Any:
        """``work(conn)``, retried on a lost connection, a lock or statement timeout, a
        serialization failure or a deadlock, with exponential backoff; UpstreamError after
        ``retries`` consecutive failures.  Other database errors are a FailedError."""
        import psycopg
        from psycopg import errors

        while True:
            try:
                result = work(self._connection())
            except psycopg.Error as exc:
                if not _retryable(exc):
                    raise FailedError(
                        f"backfill of {self.change.qualified} failed: {_one_line(exc)}",
                        "fix the cause; the committed cursor is kept and the next run resumes from it",
                    ) from exc
                if on_failure is not None:
                    on_failure(exc)
                reason = _one_line(exc)
                if isinstance(exc, errors.LockNotAvailable):
                    reason = (
                        f"lock timeout ({self.options.lock_timeout_ms}ms) on {self.change.schema}.{self.change.table}"
                    )
                    reason += self._blockers()
                if self.conn is not None and (self.conn.closed or self.conn.broken):
                    self.close()
                self.failures += 1
                if self.failures > self.options.retries:
                    raise UpstreamError(
                        f"backfill of {self.change.qualified}: {reason}; "
                        f"gave up after {self.failures} attempts in a row",
                        "the committed cursor is kept: run it again to resume",
                    ) from exc
                delay = min(MAX_BACKOFF, 0.5 * 2 ** (self.failures - 1))
                if self.on_retry is not None:
                    self.on_retry(f"{reason}; retry {self.failures}/{self.options.retries} in {delay:g}s")
                self.sleep(delay)
                continue
            self.failures = 0
            return result

    def _blockers(self) -> str:
        """``; blocked by pid N (query)`` for the sessions holding locks on the table that conflict
        with the batch's (or, when none does, holding row locks there in a transaction older than
        the lock timeout).  Read after the timeout: what still holds the lock now."""
        import psycopg

        if self.conn is None or self.conn.closed or self.conn.broken:
            return ""
        try:
            rows = self.conn.execute(
                "SELECT DISTINCT l.pid, left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 200),"
                " l.mode = ANY(%s) AS conflicting"
                " FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " JOIN pg_class r ON r.oid = l.relation JOIN pg_namespace n ON n.oid = r.relnamespace"
                " WHERE n.nspname = %s AND r.relname = %s AND l.granted AND l.pid <> pg_backend_pid()"
                " AND (l.mode = ANY(%s) OR (l.mode <> 'AccessShareLock'"
                "      AND a.xact_start < now() - make_interval(secs => %s)))"
                " ORDER BY conflicting DESC, l.pid",
                (
                    list(_BLOCKING_MODES),
                    self.change.schema,
                    self.change.table,
                    list(_BLOCKING_MODES),
                    self.options.lock_timeout_ms / 1000,
                ),
            ).fetchall()
        except psycopg.Error:
            return ""
        if not rows:
            return ""
        if any(r[2] for r in rows):
            rows = [r for r in rows if r[2]]
        shown = ", ".join(f"pid {r[0]} ({r[1]})" for r in rows[:3])
        more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
        return f"; blocked by {shown}{more}"


def run_backfill(
    connect: Callable[[], Any],
    change: Change,
    options: Options,
    *,
    on_progress: Callable[[Progress], None],
    checkpoint: Callable[[], None],
    sleep: Callable[[float], None],
    monotonic: Callable[[], float] = time.monotonic,
    replica_lag: Callable[[], float | None] | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> Progress:
    """Fill ``change``'s column in batches until no key is left after the cursor; the final Progress.

    ``connect`` opens a new connection (used again after a connection is lost).  ``checkpoint``
    runs between batches and stops the run by raising; the committed cursor stays.  See the
    module docstring for what a batch does and :class:`Options` for the throttles."""
    from psycopg import sql

    runner = _Runner(connect, change, options, sleep, on_retry)
    try:
        started_with: tuple[list[KeyColumn], Progress] = runner.attempt(lambda conn: _start(conn, change, options))
        key, progress = started_with
        if progress.finished:
            return progress
        lock_state = sql.SQL(
            "SELECT cursor::text, finished_at IS NOT NULL FROM {} WHERE change_id = %s FOR UPDATE"
        ).format(_state_table())
        finish = sql.SQL("UPDATE {} SET finished_at = now(), updated_at = now() WHERE change_id = %s").format(
            _state_table()
        )
        timeouts = batch_settings_sql(options)
        last_key = runner.attempt(lambda conn: conn.execute(bound_sql(change, key, None, None)).fetchone())
        until: str | None = last_key[0] if last_key is not None else None
        if until is None:  # an empty table: the pass is done before it starts
            until = "[]"
        size = progress.batch_size
        started = monotonic()
        throttled_rows = 0  # rows counted against max_rate since `started`

        def one_batch(conn: Any) -> tuple[int, str | None, bool]:
            with conn.transaction():
                conn.execute(timeouts)
                row = conn.execute(lock_state, (change.id,)).fetchone()
                if row is None:
                    raise RefusedError(f"the backfill state of {change.id} was deleted during the run")
                cursor: str | None = row[0]
                if row[1]:  # another run of this change finished the pass meanwhile
                    return 0, cursor, True
                found = conn.execute(bound_sql(change, key, cursor, size, until)).fetchone()
                if found is None:  # fewer than `size` keys left: up to the last one
                    found = conn.execute(bound_sql(change, key, cursor, None, until)).fetchone()
                if found is None:  # no key after the cursor: the pass is done
                    conn.execute(finish, (change.id,))
                    return 0, cursor, True
                updated = conn.execute(batch_sql(change, key, cursor, found[0])).fetchone()[0]
            return int(updated), found[0], False

        def shrink_on_timeout(exc: BaseException) -> None:
            from psycopg import errors

            nonlocal size
            if isinstance(exc, errors.QueryCanceled):  # statement timeout: a smaller batch may fit
                size = max(options.min_batch, size // 4)

        first = True
        while True:
            if not first:
                checkpoint()
            first = False
            _wait_for_replica(replica_lag, options, progress, on_progress, on_retry, sleep, checkpoint)
            t0 = monotonic()
            outcome: tuple[int, str | None, bool] = runner.attempt(one_batch, on_failure=shrink_on_timeout)
            updated, cursor, finished = outcome
            took = monotonic() - t0
            if cursor is not None:
                progress.cursor = json.loads(cursor)
            progress.finished = finished
            if not finished:
                progress.batches += 1
                progress.done_rows += updated
                throttled_rows += updated
                size = _next_size(size, took, options)
            progress.batch_size = size
            progress.remaining = max(0, progress.remaining_at_start - progress.done_rows)
            progress.elapsed = monotonic() - started
            progress.rate = progress.done_rows / progress.elapsed if progress.elapsed > 0 else 0.0
            progress.note = None
            on_progress(progress)
            if finished:
                return progress
            if options.max_rate is not None:
                ahead = throttled_rows / options.max_rate - (monotonic() - started)
                if ahead > 0:
                    sleep(ahead)
    finally:
        runner.close()


def _start(conn: Any, change: Change, options: Options) -> tuple[list[KeyColumn], Progress]:
    """Check the table, create or resume the state row, and estimate the work."""
    from psycopg import sql

    key = key_columns(conn, change)
    if not _column_exists(conn, change):
        raise RefusedError(f"column {change.qualified} does not exist", "run the expand phase before the backfill")
    ensure_state_table(conn)
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (change_id, schema_name, table_name, column_name, started_at, updated_at)"
            " VALUES (%s, %s, %s, %s, now(), now()) ON CONFLICT (change_id) DO NOTHING"
        ).format(_state_table()),
        (change.id, change.schema, change.table, change.column),
    )
    row = state(conn, change)
    assert row is not None
    if (row["schema_name"], row["table_name"], row["column_name"]) != (change.schema, change.table, change.column):
        raise RefusedError(
            f"change {change.id} was backfilled for {row['schema_name']}.{row['table_name']}.{row['column_name']}, "
            f"not {change.qualified}",
            f"rename the change file, or delete its row from {STATE_SCHEMA}.{STATE_TABLE}",
        )
    finished = row["finished_at"] is not None
    total, left = _estimate(conn, change, exact=finished)
    size = max(options.min_batch, min(options.batch_size, _max_batch(options)))
    progress = Progress(0, total, left, row["cursor"], 0, 0.0, size, remaining_at_start=left)
    if finished:
        if left == 0:
            progress.finished = True
            return key, progress
        # rows written since the last pass without the trigger: a new pass from the start
        conn.execute(
            sql.SQL(
                "UPDATE {} SET cursor = NULL, finished_at = NULL, started_at = now(), updated_at = now()"
                " WHERE change_id = %s"
            ).format(_state_table()),
            (change.id,),
        )
        progress.cursor = None
    return key, progress


def _max_batch(options: Options) -> int:
    """``max_batch``, and with ``max_rate`` at most a second's worth of rows per batch."""
    if options.max_rate is None:
        return options.max_batch
    return max(options.min_batch, min(options.max_batch, int(options.max_rate)))


def _next_size(size: int, took: float, options: Options) -> int:
    """Toward ``target_batch_seconds``: double when a batch took under half of it, scale down
    in proportion when it took longer; within min_batch and max_batch."""
    target = options.target_batch_seconds
    if took < target / 2:
        size *= 2
    elif took > target:
        size = int(size * target / took)
    return max(options.min_batch, min(_max_batch(options), size))


def _wait_for_replica(
    replica_lag: Callable[[], float | None] | None,
    options: Options,
    progress: Progress,
    on_progress: Callable[[Progress], None],
    on_retry: Callable[[str], None] | None,
    sleep: Callable[[float], None],
    checkpoint: Callable[[], None],
) -> None:
    limit = options.max_replica_lag_seconds
    if replica_lag is None or limit is None:
        return
    while True:
        lag = replica_lag()
        if lag is None or lag <= limit:
            progress.note = None
            return
        message = f"waiting for replica lag {lag:.0f}s > {limit:g}s"
        progress.note = message
        if on_retry is not None:
            on_retry(message)
        on_progress(progress)
        sleep(1.0)
        checkpoint()
