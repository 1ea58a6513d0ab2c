"""The four phases of a column change through the real CLI, with the previous application version
writing and reading all along; the backfill killed and its connection terminated mid-run."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.migrate.load import Load
from tests.migrate.replica import Pair
from tests.migrate.world import World

pytestmark = pytest.mark.postgres

CHANGE = """\
table: users
column: {name: email_normalized, type: text}
backfill: lower(email)
constraints: [not_null, unique]
"""


def setup_users(w: World, rows: int) -> None:
    w.sql("CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL)")
    w.sql("INSERT INTO users (email) SELECT 'User' || g || '@Example.COM' FROM generate_series(1, %s) g", (rows,))
    w.sql("ANALYZE users")
    (w.migrations / "changes").mkdir(exist_ok=True)
    (w.migrations / "changes" / "email_normalized.yaml").write_text(CHANGE)


def mismatches(w: World) -> int:
    return int(w.sql("SELECT count(*) FROM users WHERE email_normalized IS DISTINCT FROM lower(email)")[0][0])


def phase_status(w: World) -> dict:
    data = w.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    (change,) = data["changes"]
    return change


def test_four_phases_keep_the_previous_version_working(world: World) -> None:
    setup_users(world, 30_000)
    assert phase_status(world)["phase"] == "none"
    with Load(world.dsn) as load:
        for phase in ("expand", "dual-write", "backfill", "contract"):
            r = world.opsctl("db", "migrate", phase, "app", "email_normalized", "--yes")
            assert r.code == 0, f"{phase}: {r.stderr}"
            time.sleep(0.3)
            assert phase_status(world)["phase"] == phase, json.dumps(phase_status(world))
    assert load.errors == []
    assert load.inserted > 20 and load.updated > 20
    # bounded lock waits: no write waited longer than the lock_timeout plus a margin
    assert load.max_write() < 2.0, load.max_write()
    assert mismatches(world) == 0
    status = phase_status(world)
    assert status["remaining"] == 0 and status["backfilled"] >= 30_000 - 1
    nullable = world.sql("SELECT is_nullable FROM information_schema.columns WHERE column_name = 'email_normalized'")
    assert nullable == [("NO",)]
    assert world.sql("SELECT count(*) FROM pg_constraint WHERE conname LIKE '%%not_null%%'") == [(0,)]
    (kept,) = world.sql("SELECT email FROM users WHERE email LIKE 'User%%@Example.COM' ORDER BY id LIMIT 1")[0]
    with pytest.raises(Exception, match=r"unique|duplicate"):  # a row the load did not rewrite: same normalized email
        world.sql("INSERT INTO users (email) VALUES (%s)", (kept.lower(),))
    full = world.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    assert full["invalid_indexes"] == [] and full["not_valid_constraints"] == []


def test_dry_run_of_each_phase_prints_sql_and_changes_nothing(world: World) -> None:
    setup_users(world, 10)
    r = world.opsctl("--dry-run", "db", "migrate", "expand", "app", "email_normalized")
    assert r.code == 0, r.stderr
    assert 'ADD COLUMN IF NOT EXISTS "email_normalized" text' in r.stdout
    assert world.sql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'email_normalized'") == [(0,)]
    assert world.opsctl("db", "migrate", "expand", "app", "email_normalized").code == 0
    dw = world.opsctl("--dry-run", "db", "migrate", "dual-write", "app", "email_normalized", "-o", "json")
    assert dw.code == 0 and "CREATE TRIGGER" in dw.stdout and "lower(email)" in dw.stdout
    assert world.sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal") == [(0,)]


def test_phases_refuse_out_of_order(world: World) -> None:
    setup_users(world, 100)
    r = world.opsctl("db", "migrate", "backfill", "app", "email_normalized")
    assert r.code == 3 and "expand" in r.stderr
    assert world.opsctl("db", "migrate", "expand", "app", "email_normalized").code == 0
    r = world.opsctl("db", "migrate", "backfill", "app", "email_normalized")
    assert r.code == 3 and "dual-write" in r.stderr
    assert world.opsctl("db", "migrate", "dual-write", "app", "email_normalized").code == 0
    r = world.opsctl("db", "migrate", "contract", "app", "email_normalized")
    assert r.code == 3 and "100 row(s)" in r.stderr and "backfill" in r.stderr


def test_dual_write_verify(world: World) -> None:
    setup_users(world, 100)
    for phase in ("expand", "dual-write"):
        assert world.opsctl("db", "migrate", phase, "app", "email_normalized").code == 0
    world.sql("INSERT INTO users (email) VALUES ('Fresh@Example.com')")
    world.sql("UPDATE users SET email = 'Changed@Example.com' WHERE id = 5")
    ok = world.opsctl("db", "migrate", "dual-write", "app", "email_normalized", "--verify", "-o", "json")
    assert ok.code == 0, ok.stderr
    assert ok.json()["written_since"] == 2 and ok.json()["unpopulated_since"] == 0
    world.sql("ALTER TABLE users DISABLE TRIGGER USER")
    world.sql("INSERT INTO users (email) VALUES ('Missed@Example.com')")
    world.sql("ALTER TABLE users ENABLE TRIGGER USER")
    bad = world.opsctl("db", "migrate", "dual-write", "app", "email_normalized", "--verify", "-o", "json")
    assert bad.code == 1 and bad.json()["unpopulated_since"] == 1


def _backfill_started(w: World) -> bool:
    rows = w.sql("SELECT to_regclass('opsctl_migrations.backfill') IS NOT NULL")
    if not rows[0][0]:
        return False
    done = w.sql("SELECT coalesce(sum(rows_done), 0) FROM opsctl_migrations.backfill")[0][0]
    return int(done) > 0


def _reference_equal(w: World) -> None:
    assert w.sql("SELECT count(*) FROM users WHERE email_normalized IS NULL") == [(0,)]
    assert mismatches(w) == 0


def test_sigkill_mid_backfill_then_the_rerun_finishes_exactly(world: World) -> None:
    world.write_config(ttl="2s")
    setup_users(world, 200_000)
    for phase in ("expand", "dual-write"):
        assert world.opsctl("db", "migrate", phase, "app", "email_normalized").code == 0
    proc = world.start("db", "migrate", "backfill", "app", "email_normalized", "--max-rate", "40000")
    deadline = time.monotonic() + 60
    while not _backfill_started(world) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    left = world.sql("SELECT count(*) FROM users WHERE email_normalized IS NULL")[0][0]
    assert 0 < left < 200_000, left  # killed half-way
    cursor = world.sql("SELECT cursor, finished_at FROM opsctl_migrations.backfill")[0]
    assert cursor[0] is not None and cursor[1] is None
    time.sleep(2.5)  # the dead driver's lock lease runs out
    r = world.opsctl("db", "migrate", "backfill", "app", "email_normalized")
    assert r.code == 0, r.stderr
    _reference_equal(world)
    runs = world.opsctl("runs", "--all", "-o", "json").json()
    states = [x["state"] for x in runs if x["kind"] == "db migrate backfill"]
    assert "succeeded" in states and ("interrupted" in states or "orphaned" in states)


def test_connection_terminated_mid_batch_is_retried_and_nothing_is_missed(world: World) -> None:
    world.write_config(retries=5)
    setup_users(world, 100_000)
    for phase in ("expand", "dual-write"):
        assert world.opsctl("db", "migrate", phase, "app", "email_normalized").code == 0
    killed: list[int] = []

    def terminator() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(killed) < 2:
            rows = world.sql(
                "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'opsctl migrate backfill%%'"
                " AND application_name NOT LIKE '%%watch%%' AND state = 'active' AND query LIKE '%%UPDATE%%'"
            )
            for (pid,) in rows:
                world.sql("SELECT pg_terminate_backend(%s)", (pid,))
                killed.append(pid)
                time.sleep(0.3)
            time.sleep(0.01)

    thread = threading.Thread(target=terminator, daemon=True)
    thread.start()
    r = world.opsctl("db", "migrate", "backfill", "app", "email_normalized", "--max-rate", "50000")
    thread.join(timeout=60)
    assert killed, "the test never caught a batch in flight"
    assert r.code == 0, r.stderr
    _reference_equal(world)


def test_sigterm_stops_the_backfill_cleanly_and_it_resumes(world: World) -> None:
    setup_users(world, 100_000)
    for phase in ("expand", "dual-write"):
        assert world.opsctl("db", "migrate", phase, "app", "email_normalized").code == 0
    proc = world.start("db", "migrate", "backfill", "app", "email_normalized", "--max-rate", "20000")
    deadline = time.monotonic() + 60
    while not _backfill_started(world) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert world.sql("SELECT count(*) FROM users WHERE email_normalized IS NULL")[0][0] > 0
    r = world.opsctl("db", "migrate", "backfill", "app", "email_normalized")
    assert r.code == 0, r.stderr
    _reference_equal(world)


def test_hostile_change_file_is_a_config_error(world: World) -> None:
    setup_users(world, 1)
    (world.migrations / "changes" / "evil.yaml").write_text(
        'table: users"; DROP TABLE users; --\ncolumn: {name: x, type: text}\nbackfill: lower(email)\n'
    )
    r = world.opsctl("db", "migrate", "expand", "app", "evil")
    assert r.code == 2, r.stderr
    assert "evil.yaml:1" in r.stderr and "Traceback" not in r.stderr
    assert world.sql("SELECT to_regclass('users') IS NOT NULL") == [(True,)]
    listed = json.loads(world.opsctl("db", "migrate", "status", "app", "-o", "json").stdout)
    assert {c["id"]: c["phase"] for c in listed["changes"]}["evil"] == "invalid"


def test_backfill_waits_while_the_replica_lags(replica_pair: Pair, isolated: Path) -> None:
    import os

    w = World(isolated, "postgres", replica_pair.primary, dict(os.environ))
    w.write_config(replica_dsn=replica_pair.standby)
    (w.tmp / "opsctl.yaml").write_text((w.tmp / "opsctl.yaml").read_text().replace(
        "batch_target: 0.05}", "batch_target: 0.05, max_replica_lag: 2s}"))  # fmt: skip
    setup_users(w, 20_000)
    for phase in ("expand", "dual-write"):
        assert w.opsctl("db", "migrate", phase, "app", "email_normalized").code == 0
    replica_pair.pause_replay()
    w.sql("INSERT INTO users (email) VALUES ('Lag@Example.com')")  # WAL the standby receives but does not replay
    time.sleep(3)
    timer = threading.Timer(2.0, replica_pair.resume_replay)
    timer.start()
    started = time.monotonic()
    try:
        r = w.opsctl("db", "migrate", "backfill", "app", "email_normalized", "--batch-size", "5000")
    finally:
        timer.join()
    assert r.code == 0, r.stderr
    assert "waiting for replica lag" in r.stderr
    assert time.monotonic() - started >= 2.0  # it held back until replay resumed
    _reference_equal(w)


def test_dual_write_refuses_an_expression_that_would_break_the_applications_writes(world: World) -> None:
    setup_users(world, 50)
    world.sql("INSERT INTO users (email) VALUES ('not-a-number')")
    assert world.opsctl("db", "migrate", "expand", "app", "email_normalized").code == 0
    for backfill, why in (("lower(emial)", "emial"), ("(email::int)::text", "invalid input syntax")):
        (world.migrations / "changes" / "email_normalized.yaml").write_text(
            CHANGE.replace("backfill: lower(email)", f"backfill: {backfill}")
        )
        for dry in ((), ("--dry-run",)):
            r = world.opsctl(*dry, "db", "migrate", "dual-write", "app", "email_normalized")
            assert r.code == 3, r.stderr
            assert why in r.stderr and "would fail every write" in r.stderr
    assert world.sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal") == [(0,)]
    world.sql("INSERT INTO users (email) VALUES ('still@works.io')")  # the application is untouched
