"""The batched backfill against the real PostgreSQL: equal to a one-shot UPDATE, resumable after a
stop, a killed connection or a lock, throttled by injected clocks (no wall-time asserts)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsctl.errors import FailedError, RefusedError, UpstreamError
from opsctl.migrate import backfill
from opsctl.migrate.backfill import Options, Progress, batch_sql, bound_sql, remaining, run_backfill, state
from opsctl.migrate.change import Change, KeyColumn, expand_sql, key_columns, load_change

pytestmark = pytest.mark.postgres

EXPR = "lower(email) || '#' || (id % 7)::text"  # a '%' too: the batch must not use client-side parameters


@dataclass
class Clock:
    """monotonic() that moves only when sleep() is called; every sleep recorded."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Recorder:
    progress: list[Progress] = field(default_factory=list)
    retries: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)


class Stop(KeyboardInterrupt):
    pass


def make_change(tmp_path: Path, table: str, backfill: str = EXPR, name: str | None = None) -> Change:
    path = tmp_path / f"{name or table}.yaml"
    path.write_text(
        f'table: {table}\ncolumn: {{name: email_normalized, type: text}}\nbackfill: "{backfill}"\n', encoding="utf-8"
    )
    return load_change(path)


def make_table(conn: Any, change: Change, rows: int) -> None:
    conn.execute(f"CREATE TABLE {change.table} (id int PRIMARY KEY, email text, pad text)")
    conn.execute(
        f"INSERT INTO {change.table} SELECT g, 'User' || g || '@Example.COM', repeat('x', 20)"
        f" FROM generate_series(1, {rows}) g"
    )
    conn.execute(expand_sql(change))
    make_reference(conn, change)


def make_reference(conn: Any, change: Change) -> None:
    conn.execute(f"CREATE TABLE {change.table}_ref AS SELECT * FROM {change.table}")
    conn.execute(f"UPDATE {change.table}_ref SET email_normalized = {change.backfill}")


def assert_equals_reference(conn: Any, change: Change) -> None:
    t = change.table
    for a, b in ((t, f"{t}_ref"), (f"{t}_ref", t)):
        extra = conn.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) d").fetchone()[0]
        assert extra == 0, f"{extra} rows of {a} are not in {b}"
    assert remaining(conn, change) == 0


def connector(dsn: str, recorder: Recorder) -> Callable[[], Any]:
    import psycopg

    def connect() -> Any:
        conn = psycopg.connect(dsn)
        recorder.pids.append(conn.info.backend_pid)
        return conn

    return connect


def run(
    dsn: str,
    change: Change,
    options: Options,
    recorder: Recorder,
    clock: Clock,
    *,
    checkpoint: Callable[[], None] = lambda: None,
    on_progress: Callable[[Progress], None] | None = None,
    **kwargs: Any,
) -> Progress:
    def progress(p: Progress) -> None:
        recorder.progress.append(Progress(**vars(p)))
        if on_progress is not None:
            on_progress(p)

    return run_backfill(
        connector(dsn, recorder),
        change,
        options,
        on_progress=progress,
        checkpoint=checkpoint,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        on_retry=recorder.retries.append,
        **kwargs,
    )


FIXED = Options(batch_size=1000, min_batch=1000, max_batch=1000)


def test_backfill_equals_a_one_shot_update(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "users")
    make_table(scratch_conn, change, 20_000)
    scratch_conn.execute("UPDATE users SET email_normalized = 'kept' WHERE id IN (5, 15000)")  # written by the app
    scratch_conn.execute("UPDATE users_ref SET email_normalized = 'kept' WHERE id IN (5, 15000)")
    recorder, clock = Recorder(), Clock()
    final = run(scratch_dsn, change, Options(batch_size=500), recorder, clock)
    assert_equals_reference(scratch_conn, change)
    assert final.finished and final.done_rows == 19_998 and final.remaining == 0
    assert final.total_estimate is None or final.total_estimate >= 0
    assert recorder.progress[0].remaining_at_start == 19_998
    sizes = [p.batch_size for p in recorder.progress]
    assert sizes[0] == 1000 and max(sizes) > 1000  # the batches grew: the injected clock says they were fast
    row = state(scratch_conn, change)
    assert row is not None
    assert row["rows_done"] == 19_998 and row["cursor"] == [20_000] and row["finished_at"] is not None
    assert row["batches"] == final.batches
    assert recorder.retries == [] and len(recorder.pids) == 1 and clock.sleeps == []
    # finished and nothing NULL: a second run returns at once
    again = run(scratch_dsn, change, FIXED, Recorder(), clock)
    assert again.finished and again.done_rows == 0 and again.batches == 0


def test_a_row_written_after_a_finished_pass_gets_a_new_pass(
    tmp_path: Path, scratch_conn: Any, scratch_dsn: str
) -> None:
    change = make_change(tmp_path, "late")
    make_table(scratch_conn, change, 3000)
    run(scratch_dsn, change, FIXED, Recorder(), Clock())
    scratch_conn.execute("INSERT INTO late VALUES (0, 'Late@X', 'p', NULL)")  # behind the cursor, no trigger
    scratch_conn.execute("INSERT INTO late_ref VALUES (0, 'Late@X', 'p', 'late@x#0')")
    final = run(scratch_dsn, change, FIXED, Recorder(), Clock())
    assert final.done_rows == 1 and final.finished
    assert_equals_reference(scratch_conn, change)


def test_resume_after_a_stop_from_checkpoint(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "resumed")
    make_table(scratch_conn, change, 20_000)
    calls = 0

    def stop_after_three() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise Stop()

    with pytest.raises(Stop):
        run(scratch_dsn, change, FIXED, Recorder(), Clock(), checkpoint=stop_after_three)
    row = state(scratch_conn, change)
    assert row is not None
    assert row["cursor"] == [3000] and row["rows_done"] == 3000 and row["finished_at"] is None
    assert remaining(scratch_conn, change) == 17_000
    live = scratch_conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'"
    ).fetchone()[0]
    assert live == 0  # the stopped run closed its connection

    recorder = Recorder()
    final = run(scratch_dsn, change, FIXED, recorder, Clock())
    assert final.done_rows == 17_000 and final.batches == 17
    assert recorder.progress[0].cursor == [4000]  # resumed after the committed cursor, not from the start
    assert_equals_reference(scratch_conn, change)
    row = state(scratch_conn, change)
    assert row is not None and row["rows_done"] == 20_000 and row["batches"] == 20


def test_two_runs_at_once_take_turns_and_do_the_work_once(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "twice")
    make_table(scratch_conn, change, 20_000)
    results: list[Progress] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def one() -> None:
        try:
            start.wait()
            options = Options(batch_size=500, min_batch=500, max_batch=500)
            results.append(run(scratch_dsn, change, options, Recorder(), Clock()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(p.done_rows for p in results) == 20_000
    assert sum(p.batches for p in results) == 40
    row = state(scratch_conn, change)
    assert row is not None and row["rows_done"] == 20_000 and row["batches"] == 40
    assert_equals_reference(scratch_conn, change)


CHILD = """
import sys, time, psycopg
from pathlib import Path
from opsctl.migrate.backfill import Options, run_backfill
from opsctl.migrate.change import load_change

dsn, path = sys.argv[1], Path(sys.argv[2])
def progress(p):
    print(p.batches, flush=True)
run_backfill(lambda: psycopg.connect(dsn, application_name="opsctl_sigkill_test"), load_change(path),
             Options(batch_size=500, min_batch=500, max_batch=500), on_progress=progress,
             checkpoint=lambda: None, sleep=time.sleep)
"""


def test_sigkill_loses_at_most_the_uncommitted_batch(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    # every batch sleeps 50 ms inside its UPDATE: the kill most likely lands in the middle of one
    slow = "CASE WHEN id % 500 = 250 THEN (SELECT lower(email) FROM pg_sleep(0.05)) ELSE lower(email) END"
    change = make_change(tmp_path, "sigkilled", backfill=slow)
    make_table(scratch_conn, change, 20_000)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, scratch_dsn, str(change.source)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if int(line) >= 5:
                break
        time.sleep(0.03)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    for _ in range(500):  # the server notices the lost client and rolls its transaction back
        gone = scratch_conn.execute(
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'opsctl_sigkill_test'"
        ).fetchone()[0]
        if gone:
            break
        time.sleep(0.01)
    row = state(scratch_conn, change)
    assert row is not None and 5 <= row["batches"] < 40 and row["finished_at"] is None
    filled = scratch_conn.execute("SELECT count(*) FROM sigkilled WHERE email_normalized IS NOT NULL").fetchone()[0]
    assert filled == row["rows_done"] == row["cursor"][0] == row["batches"] * 500  # nothing half-done

    final = run(scratch_dsn, change, FIXED, Recorder(), Clock())
    assert final.done_rows == 20_000 - filled
    assert_equals_reference(scratch_conn, change)


def test_terminated_connection_between_batches_is_reconnected(
    tmp_path: Path, scratch_conn: Any, scratch_dsn: str
) -> None:
    change = make_change(tmp_path, "killed")
    make_table(scratch_conn, change, 20_000)
    recorder, clock = Recorder(), Clock()

    def kill_after_five(p: Progress) -> None:
        if p.batches == 5 and len(recorder.pids) == 1:
            pid = recorder.pids[-1]
            scratch_conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))  # waits until it is gone
            assert (
                scratch_conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0
            )

    final = run(scratch_dsn, change, FIXED, recorder, clock, on_progress=kill_after_five)
    assert len(recorder.pids) == 2 and len(recorder.retries) == 1
    assert "retry 1/5" in recorder.retries[0]
    assert clock.sleeps == [0.5]
    assert final.done_rows == 20_000
    assert_equals_reference(scratch_conn, change)


def test_terminated_connection_mid_batch_loses_only_that_batch(
    tmp_path: Path, scratch_conn: Any, scratch_dsn: str
) -> None:
    # row 10500 sleeps in the expression: the batch holding it is killed while it runs
    slow = "CASE WHEN id = 10500 THEN (SELECT lower(email) FROM pg_sleep(0.5)) ELSE lower(email) END"
    change = make_change(tmp_path, "midbatch", backfill=slow)
    make_table(scratch_conn, change, 20_000)
    recorder, clock = Recorder(), Clock()
    killed: list[int] = []

    def terminator() -> None:
        import time

        for _ in range(200):
            row = scratch_conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE 'WITH updated%'"
            ).fetchone()
            if row:
                scratch_conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                killed.append(row[0])
                return
            time.sleep(0.02)

    thread = threading.Thread(target=terminator)
    thread.start()
    try:
        final = run(scratch_dsn, change, FIXED, recorder, clock)
    finally:
        thread.join()
    assert killed == recorder.pids[:1] and len(recorder.pids) == 2
    assert len(recorder.retries) == 1
    assert final.done_rows == 20_000 and final.batches == 20
    assert_equals_reference(scratch_conn, change)
    row = state(scratch_conn, change)
    assert row is not None and row["rows_done"] == 20_000 and row["batches"] == 20


def test_a_lock_held_longer_than_the_retries_is_an_upstream_error_naming_the_holder(
    tmp_path: Path, scratch_conn: Any, scratch_dsn: str
) -> None:
    import psycopg

    change = make_change(tmp_path, "locked")
    make_table(scratch_conn, change, 3000)
    options = Options(batch_size=1000, min_batch=1000, max_batch=1000, lock_timeout_ms=100, retries=2)
    with psycopg.connect(scratch_dsn) as holder:
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        holder_pid = holder.info.backend_pid
        recorder, clock = Recorder(), Clock()
        with pytest.raises(UpstreamError) as caught:
            run(scratch_dsn, change, options, recorder, clock)
        holder.rollback()
    message = caught.value.message
    assert "\n" not in message
    assert "lock timeout (100ms) on public.locked" in message
    assert f"pid {holder_pid} (LOCK TABLE locked IN ACCESS EXCLUSIVE MODE)" in message
    assert "gave up after 3 attempts" in message
    assert clock.sleeps == [0.5, 1.0] and len(recorder.retries) == 2
    assert all(f"pid {holder_pid}" in line for line in recorder.retries)
    # the lock is gone: the next run does the work
    run(scratch_dsn, change, options, Recorder(), Clock())
    assert_equals_reference(scratch_conn, change)


def test_a_lock_released_before_the_retries_run_out_is_waited_for(
    tmp_path: Path, scratch_conn: Any, scratch_dsn: str
) -> None:
    import psycopg

    change = make_change(tmp_path, "waited")
    make_table(scratch_conn, change, 5000)
    options = Options(batch_size=1000, min_batch=1000, max_batch=1000, lock_timeout_ms=100, retries=3)
    holder = psycopg.connect(scratch_dsn)
    clock = Clock()

    def checkpoint() -> None:  # after the second batch another session locks the table...
        if len(recorder.progress) == 2 and not holder.info.transaction_status:
            holder.execute("LOCK TABLE waited IN ACCESS EXCLUSIVE MODE")

    def sleep(seconds: float) -> None:  # ...and releases it while the backfill backs off
        clock.sleep(seconds)
        holder.rollback()

    recorder = Recorder()
    try:
        final = run_backfill(
            connector(scratch_dsn, recorder),
            change,
            options,
            on_progress=lambda p: recorder.progress.append(Progress(**vars(p))),
            checkpoint=checkpoint,
            sleep=sleep,
            monotonic=clock.monotonic,
            on_retry=recorder.retries.append,
        )
    finally:
        holder.close()
    assert len(recorder.retries) == 1 and "lock timeout" in recorder.retries[0]
    assert final.done_rows == 5000
    assert_equals_reference(scratch_conn, change)


def test_composite_primary_key(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "composite", backfill="upper(region) || '-' || seq || '-' || (seq % 3)")
    scratch_conn.execute(
        "CREATE TABLE composite (region text, seq bigint, made date, v numeric, PRIMARY KEY (region, made, seq))"
    )
    scratch_conn.execute(
        "INSERT INTO composite SELECT r, s, date '2024-01-01' + (s % 5), s / 7.0"
        " FROM unnest(array['eu', 'us', 'ap''x', 'a b']) r, generate_series(1, 1500) s"
    )
    scratch_conn.execute(expand_sql(change))
    make_reference(scratch_conn, change)
    options = Options(batch_size=700, min_batch=700, max_batch=700)
    calls = 0

    def stop_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise Stop()

    with pytest.raises(Stop):
        run(scratch_dsn, change, options, Recorder(), Clock(), checkpoint=stop_once)
    row = state(scratch_conn, change)
    assert row is not None and row["rows_done"] == 2800 and len(row["cursor"]) == 3
    final = run(scratch_dsn, change, options, Recorder(), Clock())
    assert final.done_rows == 6000 - 2800
    assert_equals_reference(scratch_conn, change)


def test_uuid_key_survives_the_cursor_round_trip(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "uuids", backfill="md5(id::text)")
    scratch_conn.execute("CREATE TABLE uuids (id uuid PRIMARY KEY)")
    scratch_conn.execute("INSERT INTO uuids SELECT md5(g::text)::uuid FROM generate_series(1, 2500) g")
    scratch_conn.execute(expand_sql(change))
    make_reference(scratch_conn, change)
    run(scratch_dsn, change, FIXED, Recorder(), Clock())
    assert_equals_reference(scratch_conn, change)


def test_table_without_a_primary_key_is_refused(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "nokey")
    scratch_conn.execute("CREATE TABLE nokey (id int, email text, email_normalized text)")
    with pytest.raises(RefusedError, match="no primary key"):
        run(scratch_dsn, change, FIXED, Recorder(), Clock())


def test_column_not_expanded_is_refused(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "noexpand")
    scratch_conn.execute("CREATE TABLE noexpand (id int PRIMARY KEY, email text)")
    with pytest.raises(RefusedError, match="expand"):
        run(scratch_dsn, change, FIXED, Recorder(), Clock())


def test_an_expression_error_is_a_failure_not_a_retry(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "broken", backfill="(1 / (id - 1500))::text")
    scratch_conn.execute("CREATE TABLE broken (id int PRIMARY KEY, email_normalized text)")
    scratch_conn.execute("INSERT INTO broken SELECT g FROM generate_series(1, 3000) g")
    recorder = Recorder()
    with pytest.raises(FailedError, match="division by zero"):
        run(scratch_dsn, change, FIXED, recorder, Clock())
    assert recorder.retries == []
    row = state(scratch_conn, change)
    assert row is not None and row["cursor"] == [1000]


def test_same_change_id_for_another_table_is_refused(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    first = make_change(tmp_path, "t_one", name="shared")
    make_table(scratch_conn, first, 10)
    run(scratch_dsn, first, FIXED, Recorder(), Clock())
    second = make_change(tmp_path, "t_two", name="shared")
    make_table(scratch_conn, second, 10)
    with pytest.raises(RefusedError, match=r"public\.t_one\.email_normalized"):
        run(scratch_dsn, second, FIXED, Recorder(), Clock())


def test_max_rate_is_honoured_with_sleeps(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "rated")
    make_table(scratch_conn, change, 5000)
    clock = Clock()
    options = Options(batch_size=500, min_batch=500, max_batch=500, max_rate=1000.0)
    final = run(scratch_dsn, change, options, Recorder(), clock)
    assert final.done_rows == 5000
    assert sum(clock.sleeps) == pytest.approx(5000 / 1000.0)
    assert len(clock.sleeps) == 10
    assert final.rate == pytest.approx(1000.0)
    assert_equals_reference(scratch_conn, change)


def test_max_rate_caps_the_batch_at_a_second_of_rows(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "capped")
    make_table(scratch_conn, change, 2000)
    recorder = Recorder()
    run(scratch_dsn, change, Options(batch_size=5000, min_batch=100, max_rate=300.0), recorder, Clock())
    assert {p.batch_size for p in recorder.progress} == {300}


def test_replica_lag_is_waited_for(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    change = make_change(tmp_path, "lagged")
    make_table(scratch_conn, change, 3000)
    lags = iter([20.0, 5.0])
    clock, recorder = Clock(), Recorder()
    options = Options(batch_size=1000, min_batch=1000, max_batch=1000, max_replica_lag_seconds=10)
    final = run(scratch_dsn, change, options, recorder, clock, replica_lag=lambda: next(lags, 5.0))
    assert clock.sleeps == [1.0]
    assert recorder.retries == ["waiting for replica lag 20s > 10s"]
    assert recorder.progress[0].note == "waiting for replica lag 20s > 10s" and recorder.progress[0].batches == 0
    assert recorder.progress[-1].note is None
    assert final.done_rows == 3000
    assert_equals_reference(scratch_conn, change)


class TimedConnection:
    """A connection whose batch statements take the next of ``durations`` on ``clock``."""

    def __init__(self, conn: Any, clock: Clock, durations: list[float]) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_clock", clock)
        object.__setattr__(self, "_durations", durations)

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        result = self._conn.execute(query, *args, **kwargs)
        text = query if isinstance(query, str) else query.as_string(self._conn)
        if text.startswith("WITH updated"):
            self._clock.now += self._durations.pop(0) if self._durations else 0.15
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)


def test_batch_size_adapts_to_the_target_time(tmp_path: Path, scratch_conn: Any, scratch_dsn: str) -> None:
    import psycopg

    change = make_change(tmp_path, "adaptive")
    make_table(scratch_conn, change, 30_000)
    clock, recorder = Clock(), Recorder()
    durations = [0.05, 0.05, 0.8, 0.15, 0.5]
    options = Options(batch_size=1000, min_batch=200, max_batch=3000, target_batch_seconds=0.2)
    run_backfill(
        lambda: TimedConnection(psycopg.connect(scratch_dsn), clock, durations),
        change,
        options,
        on_progress=lambda p: recorder.progress.append(Progress(**vars(p))),
        checkpoint=lambda: None,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    sizes = [p.batch_size for p in recorder.progress[:5]]
    # fast: x2, fast: x2 (capped at 3000), 4x too slow: /4, within the target: kept, 2.5x too slow: /2.5
    assert sizes == [2000, 3000, 750, 750, 300]
    assert clock.sleeps == []
    assert_equals_reference(scratch_conn, change)


def test_batch_statements_render_exactly(tmp_path: Path, scratch_conn: Any) -> None:
    change = make_change(tmp_path, "plan")
    key = [KeyColumn("id", "integer", "N")]
    assert batch_sql(change, key, "[5000]", "[6000]").as_string(scratch_conn) == (
        'WITH updated AS (UPDATE "public"."plan" SET "email_normalized" = (lower(email) || \'#\' || (id % 7)::text)\n'
        "  WHERE (\"id\") > (('[5000]'::jsonb ->> 0)::integer) AND (\"id\") <= (('[6000]'::jsonb ->> 0)::integer)"
        ' AND "email_normalized" IS NULL RETURNING 1),\n'
        'saved AS (UPDATE "opsctl_migrations"."backfill" SET cursor = \'[6000]\'::jsonb,'
        " rows_done = rows_done + (SELECT count(*) FROM updated),\n"
        "  batches = batches + 1, updated_at = now() WHERE change_id = 'plan' RETURNING 1)\n"
        "SELECT (SELECT count(*) FROM updated), (SELECT count(*) FROM saved)"
    )
    assert bound_sql(change, key, "[5000]", 1000).as_string(scratch_conn) == (
        'SELECT jsonb_build_array(to_jsonb("id"))::text FROM "public"."plan"'
        ' WHERE ("id") > ((\'[5000]\'::jsonb ->> 0)::integer) ORDER BY "id" OFFSET 999 LIMIT 1'
    )
    assert bound_sql(change, key, None, None).as_string(scratch_conn) == (
        'SELECT jsonb_build_array(to_jsonb("id"))::text FROM "public"."plan" ORDER BY "id" DESC LIMIT 1'
    )


@pytest.mark.parametrize("composite", [False, True])
def test_batch_statements_scan_a_key_range_not_the_table(tmp_path: Path, scratch_conn: Any, composite: bool) -> None:
    change = make_change(tmp_path, "ranged", backfill="lower(email)")
    key_sql = "PRIMARY KEY (region, id)" if composite else "PRIMARY KEY (id)"
    scratch_conn.execute(f"CREATE TABLE ranged (region text, id int, email text, email_normalized text, {key_sql})")
    scratch_conn.execute(
        "INSERT INTO ranged SELECT r, g, 'E' || g, NULL FROM unnest(array['ap', 'eu', 'us']) r,"
        " generate_series(1, 40000) g WHERE NOT %s OR r = 'eu'",
        (not composite,),
    )
    scratch_conn.execute("ANALYZE ranged")
    backfill.ensure_state_table(scratch_conn)
    key = key_columns(scratch_conn, change)
    cursor, last = ('["eu", 5000]', '["eu", 10000]') if composite else ("[5000]", "[10000]")
    statements = [  # (statement, what the index condition must bound)
        (batch_sql(change, key, cursor, last), ("<=", ">")),
        (batch_sql(change, key, None, last), ("<=",)),
        (bound_sql(change, key, cursor, 5000), (">",)),
        (bound_sql(change, key, cursor, None), (">",)),
    ]
    for statement, bounds in statements:
        with scratch_conn.transaction():
            scratch_conn.execute(backfill.batch_settings_sql(Options()))
            explain = b"EXPLAIN " + statement.as_bytes(scratch_conn)
            plan = "\n".join(r[0] for r in scratch_conn.execute(explain))
        assert "Seq Scan on ranged" not in plan, plan
        assert "ranged_pkey" in plan, plan
        conditions = [line for line in plan.splitlines() if "Index Cond:" in line]
        assert conditions and all(b in conditions[0] for b in bounds), plan


def test_a_large_table_estimates_what_remains(
    tmp_path: Path, scratch_conn: Any, scratch_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    change = make_change(tmp_path, "estimated")
    make_table(scratch_conn, change, 4000)
    scratch_conn.execute("UPDATE estimated SET email_normalized = 'x' WHERE id <= 1000")
    scratch_conn.execute("UPDATE estimated_ref SET email_normalized = 'x' WHERE id <= 1000")
    scratch_conn.execute("VACUUM ANALYZE estimated")
    monkeypatch.setattr(backfill, "EXACT_COUNT_LIMIT", 100)  # "large" from 100 rows on: no count
    recorder = Recorder()
    final = run(scratch_dsn, change, FIXED, recorder, Clock())
    first = recorder.progress[0]
    assert first.total_estimate == 4000
    assert first.remaining_at_start == 3000  # null_frac 0.75 of 4000, from the statistics
    assert final.done_rows == 3000
    assert_equals_reference(scratch_conn, change)


def test_options_are_checked() -> None:
    from opsctl.errors import UsageError

    with pytest.raises(UsageError):
        Options(min_batch=10, max_batch=5)
    with pytest.raises(UsageError):
        Options(max_rate=0)
