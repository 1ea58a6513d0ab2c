"""`db migrate lint|status|plan|run` through the real CLI against a scratch PostgreSQL database."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from tests.migrate.world import World

pytestmark = pytest.mark.postgres

USERS = "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);\n"


def applied_ids(w: World) -> list[str]:
    return [r[0] for r in w.sql("SELECT id FROM opsctl_migrations.applied WHERE state = 'applied' ORDER BY id")]


def test_plain_folder_runs_in_order_records_and_is_idempotent(world: World) -> None:
    world.file("0001_users.sql", USERS)
    world.file("0002_index.sql", "CREATE INDEX CONCURRENTLY users_email ON users (email);\n")
    world.file("0003_comment.sql", "-- a comment\nCOMMENT ON TABLE users IS 'people';\n")
    r = world.opsctl("db", "migrate", "run", "app")
    assert r.code == 0, r.stderr
    assert applied_ids(world) == ["0001_users", "0002_index", "0003_comment"]
    row = world.sql("SELECT checksum, applied_by, duration_ms, segments_done FROM opsctl_migrations.applied"
                    " WHERE id = '0001_users'")[0]  # fmt: skip
    assert row[0] == hashlib.sha256(USERS.encode()).hexdigest()
    assert row[1] and row[2] is not None and row[3] == 1
    assert world.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email'::regclass") == [(True,)]
    again = world.opsctl("db", "migrate", "run", "app")
    assert again.code == 0, again.stderr
    assert "nothing to apply" in again.stderr
    status = world.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    assert [a["id"] for a in status["applied"]] == ["0001_users", "0002_index", "0003_comment"]
    assert status["pending"] == [] and status["drift"] == []


def test_dry_run_prints_the_statements_and_changes_nothing(world: World) -> None:
    world.file("0001_users.sql", USERS)
    r = world.opsctl("--dry-run", "db", "migrate", "run", "app")
    assert r.code == 0, r.stderr
    assert "CREATE TABLE users" in r.stdout
    assert world.sql("SELECT to_regclass('users')") == [(None,)]
    assert world.sql("SELECT to_regclass('opsctl_migrations.applied')") == [(None,)]


def test_plan_shows_locks_rows_and_timeouts(world: World) -> None:
    world.file("0001_users.sql", USERS)
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    world.sql("INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 500) g")
    world.sql("ANALYZE users")
    world.file("0002_col.sql", "ALTER TABLE users ADD COLUMN name text;\n"
               "CREATE INDEX CONCURRENTLY users_name ON users (name);\n")  # fmt: skip
    plan = world.opsctl("db", "migrate", "plan", "app", "-o", "json").json()
    assert plan["pending"] == ["0002_col"]
    first, second = plan["statements"]
    assert first["lock"] == "ACCESS EXCLUSIVE" and first["rows"] == {"users": 500}
    assert first["lock_timeout_ms"] == 300 and first["transaction"] == "own transaction"
    assert second["lock"] == "SHARE UPDATE EXCLUSIVE" and second["statement_timeout_ms"] == 0
    assert second["transaction"].startswith("no transaction")
    table = world.opsctl("db", "migrate", "plan", "app")
    assert table.code == 0 and "ACCESS EXCLUSIVE" in table.stdout and "users: 500" in table.stdout


def test_forbidden_statement_is_refused_and_nothing_is_applied(world: World) -> None:
    world.file("0001_users.sql", USERS)
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    world.file("0002_ok.sql", "ALTER TABLE users ADD COLUMN nick text;\n")
    world.file("0003_drop.sql", "ALTER TABLE users DROP COLUMN email;\n")
    r = world.opsctl("db", "migrate", "run", "app")
    assert r.code == 3, r.stderr
    assert "0003_drop.sql:1: drop-column" in r.stderr and "forward-only" in r.stderr
    assert "Traceback" not in r.stderr
    assert applied_ids(world) == ["0001_users"]
    assert world.sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users'") == [(2,)]


def test_unsafe_statement_needs_allow_unsafe(world: World) -> None:
    world.file("0001_users.sql", USERS)
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    world.file("0002_index.sql", "CREATE INDEX users_email ON users (email);\n")
    r = world.opsctl("db", "migrate", "run", "app")
    assert r.code == 3 and "index-not-concurrently" in r.stderr and "CONCURRENTLY" in r.stderr
    ok = world.opsctl("db", "migrate", "run", "app", "--allow-unsafe")
    assert ok.code == 0, ok.stderr
    assert applied_ids(world) == ["0001_users", "0002_index"]


def test_edited_file_is_drift_and_blocks_the_run(world: World) -> None:
    world.file("0001_users.sql", USERS)
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    world.file("0001_users.sql", USERS + "-- edited later\n")
    world.file("0002_more.sql", "ALTER TABLE users ADD COLUMN nick text;\n")
    status = world.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    assert [(d["id"], d["kind"]) for d in status["drift"]] == [("0001_users", "edited")]
    r = world.opsctl("db", "migrate", "run", "app")
    assert r.code == 3 and "0001_users" in r.stderr and "changed after it was applied" in r.stderr
    assert applied_ids(world) == ["0001_users"]


def test_gap_and_file_applied_but_gone(world: World) -> None:
    world.file("0001_users.sql", USERS)
    world.file("0003_more.sql", "ALTER TABLE users ADD COLUMN nick text;\n")
    status = world.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    assert ("0003_more", "gap") in [(d["id"], d["kind"]) for d in status["drift"]]
    assert world.opsctl("db", "migrate", "run", "app").code == 3
    assert world.opsctl("db", "migrate", "run", "app", "--out-of-order").code == 0
    (world.migrations / "0003_more.sql").unlink()
    status = world.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    assert ("0003_more", "missing_file") in [(d["id"], d["kind"]) for d in status["drift"]]


def test_syntax_error_is_a_finding_with_its_line_not_a_crash(world: World) -> None:
    world.file("0001_bad.sql", "CREATE TABLE ok (id int PRIMARY KEY);\n\nALTER TABLE ok ADDD COLUMN x int;\n")
    lint = world.opsctl("db", "migrate", "lint", str(world.migrations), "-o", "json")
    assert lint.code == 1
    findings = lint.json()["findings"]
    assert [(f["rule"], f["line"]) for f in findings] == [("syntax-error", 3)]
    r = world.opsctl("db", "migrate", "run", "app")
    assert r.code == 3 and "0001_bad.sql:3" in r.stderr and "Traceback" not in r.stderr


def test_lint_clean_folder_exits_zero(world: World) -> None:
    world.file("0001_users.sql", "SET lock_timeout = '2s';\n" + USERS)
    r = world.opsctl("db", "migrate", "lint", str(world.migrations))
    assert r.code == 0, r.stdout + r.stderr
    assert "no findings" in r.stderr


def test_a_failing_statement_rolls_back_its_file_and_says_where(world: World) -> None:
    world.file("0001_users.sql", USERS)
    world.file("0002_bad.sql", "ALTER TABLE users ADD COLUMN nick text;\nALTER TABLE users ADD COLUMN nick text;\n")
    r = world.opsctl("db", "migrate", "run", "app")
    assert r.code == 1, r.stderr
    assert "0002_bad.sql:2" in r.stderr and "already exists" in r.stderr and "Traceback" not in r.stderr
    assert applied_ids(world) == ["0001_users"]
    assert world.sql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nick'") == [(0,)]


def test_lock_timeout_retries_then_gives_up_naming_the_blocker(world: World) -> None:
    world.file("0001_users.sql", USERS)
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    world.file("0002_col.sql", "ALTER TABLE users ADD COLUMN nick text;\n")
    blocker = world.connect()
    try:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE users IN ACCESS SHARE MODE")  # a long reader: the ALTER must wait
        pid = blocker.info.backend_pid
        start = time.monotonic()
        r = world.opsctl("db", "migrate", "run", "app")
        elapsed = time.monotonic() - start
    finally:
        blocker.close()
    assert r.code == 4, r.stderr
    assert f"pid {pid}" in r.stderr and "LOCK TABLE users" in r.stderr
    assert "gave up after 3 attempts" in r.stderr
    assert elapsed < 30  # bounded: 3 × 300 ms lock_timeout plus short backoffs
    assert applied_ids(world) == ["0001_users"]
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    assert applied_ids(world) == ["0001_users", "0002_col"]


def test_lock_released_during_retries_succeeds(world: World) -> None:
    world.file("0001_users.sql", USERS)
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    world.write_config(retries=8)
    world.file("0002_col.sql", "ALTER TABLE users ADD COLUMN nick text;\n")
    blocker = world.connect()
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE users IN ACCESS SHARE MODE")

    def release_once_retried() -> None:
        """Let go when the ALTER waits in a second attempt (a new query_start): a retry did happen,
        however slowly this machine started the CLI."""
        first, deadline = None, time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = world.sql("SELECT query_start FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                             " AND query LIKE 'ALTER TABLE users ADD COLUMN nick%%'")  # fmt: skip
            if rows and first is None:
                first = rows[0][0]
            elif rows and rows[0][0] != first:
                break
            time.sleep(0.02)
        blocker.close()

    timer = threading.Thread(target=release_once_retried, daemon=True)
    timer.start()
    try:
        r = world.opsctl("db", "migrate", "run", "app")
    finally:
        timer.join(70)
    assert r.code == 0, r.stderr
    assert "retry 1/8" in r.stderr
    assert applied_ids(world) == ["0001_users", "0002_col"]


def test_invalid_index_left_by_a_failed_build_is_dropped_before_the_retry(world: World) -> None:
    world.file("0001_users.sql", USERS)
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    world.sql("INSERT INTO users (email) VALUES ('a'), ('a')")
    world.file("0002_unique.sql", "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);\n")
    r = world.opsctl("db", "migrate", "run", "app")
    assert r.code == 1 and "0002_unique.sql:1" in r.stderr and "INVALID" in r.stderr
    assert world.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_key'::regclass") == [(False,)]
    status = world.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    assert status["invalid_indexes"] == [{"index": "users_email_key", "table": "users"}]
    world.sql("DELETE FROM users WHERE id = (SELECT max(id) FROM users)")
    ok = world.opsctl("db", "migrate", "run", "app")
    assert ok.code == 0, ok.stderr
    assert world.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_key'::regclass") == [(True,)]


def test_a_second_run_is_refused_naming_the_holder_of_the_database_lock(world: World) -> None:
    world.file("0001_users.sql", USERS)
    holder = world.connect()
    try:
        holder.execute("SET application_name = 'opsctl migrate run alice@laptop pid 4242'")
        holder.execute("SELECT pg_advisory_lock(%s)", (0x6F7073637471,))
        r = world.opsctl("db", "migrate", "run", "app")
    finally:
        holder.close()
    assert r.code == 3, r.stderr
    assert "alice@laptop pid 4242" in r.stderr and "backend pid" in r.stderr
    assert world.sql("SELECT to_regclass('users')") == [(None,)]


def test_two_concurrent_runs_one_applies_the_other_is_refused(world: World) -> None:
    world.file("0001_slow.sql", "SELECT pg_sleep(2);\n" + USERS)
    first = world.start("db", "migrate", "run", "app")
    time.sleep(1.0)
    second = world.opsctl("db", "migrate", "run", "app")
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.code == 3, second.stderr
    assert "locked by" in second.stderr or "being run by" in second.stderr
    assert applied_ids(world) == ["0001_slow"]


def test_journal_drizzle_folder_records_in_drizzles_table(world: World) -> None:
    entries = [
        {"idx": 0, "version": "7", "when": 1700000000000, "tag": "0000_init", "breakpoints": True},
        {"idx": 1, "version": "7", "when": 1700000100000, "tag": "0001_nick", "breakpoints": True},
    ]
    world.file("meta/_journal.json", json.dumps({"version": "7", "dialect": "postgresql", "entries": entries}))
    init = USERS + "--> statement-breakpoint\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n"
    world.file("0000_init.sql", init)
    world.file("0001_nick.sql", "ALTER TABLE users ADD COLUMN nick text;")
    r = world.opsctl("db", "migrate", "run", "app")
    assert r.code == 0, r.stderr
    rows = world.sql("SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id")
    assert rows == [(hashlib.sha256(init.encode()).hexdigest(), 1700000000000),
                    (hashlib.sha256(b"ALTER TABLE users ADD COLUMN nick text;").hexdigest(), 1700000100000)]  # fmt: skip


def test_status_reads_a_database_drizzle_already_manages(world: World) -> None:
    entries = [
        {"idx": 0, "version": "7", "when": 1700000000000, "tag": "0000_init", "breakpoints": True},
        {"idx": 1, "version": "7", "when": 1700000100000, "tag": "0001_nick", "breakpoints": True},
    ]
    world.file("meta/_journal.json", json.dumps({"version": "7", "dialect": "postgresql", "entries": entries}))
    world.file("0000_init.sql", USERS)
    world.file("0001_nick.sql", "ALTER TABLE users ADD COLUMN nick text;")
    world.sql(USERS)  # as drizzle-kit's migrator left it
    world.sql("CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations"
              " (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)")  # fmt: skip
    world.sql("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES (%s, 1700000000000)",
              (hashlib.sha256(USERS.encode()).hexdigest(),))  # fmt: skip
    status = world.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    assert [(a["id"], a["source"]) for a in status["applied"]] == [("0000_init", "drizzle")]
    assert [p["id"] for p in status["pending"]] == ["0001_nick"]
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    assert world.sql("SELECT count(*) FROM drizzle.__drizzle_migrations") == [(2,)]


def test_out_of_order_journal_entry_is_never_skipped_silently(world: World) -> None:
    entries = [
        {"idx": 0, "version": "7", "when": 1700000000000, "tag": "0000_init", "breakpoints": True},
        {"idx": 1, "version": "7", "when": 1700000300000, "tag": "0001_b", "breakpoints": True},
    ]
    world.file("meta/_journal.json", json.dumps({"version": "7", "dialect": "postgresql", "entries": entries}))
    world.file("0000_init.sql", USERS)
    world.file("0001_b.sql", "ALTER TABLE users ADD COLUMN b text;")
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    # a branch merged later brings an entry whose `when` is older than what is applied
    entries.append({"idx": 2, "version": "7", "when": 1700000200000, "tag": "0002_a", "breakpoints": True})
    world.file("meta/_journal.json", json.dumps({"version": "7", "dialect": "postgresql", "entries": entries}))
    world.file("0002_a.sql", "ALTER TABLE users ADD COLUMN a text;")
    status = world.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    kinds = {(d["id"], d["kind"]) for d in status["drift"]}
    assert ("0002_a", "out_of_order") in kinds
    assert [p["id"] for p in status["pending"]] == ["0002_a"]
    refused = world.opsctl("db", "migrate", "run", "app")
    assert refused.code == 3 and "0002_a" in refused.stderr and "skip it silently" in refused.stderr
    assert world.opsctl("db", "migrate", "run", "app", "--out-of-order").code == 0
    assert world.sql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'a'") == [(1,)]


def test_drizzle_v1_folder_layout(world: World) -> None:
    world.file("20250101120000_init/migration.sql", USERS)
    world.file("20250102090000_nick/migration.sql", "ALTER TABLE users ADD COLUMN nick text;\n")
    world.file("20250102090000_nick/snapshot.json", "{}")
    r = world.opsctl("db", "migrate", "run", "app")
    assert r.code == 0, r.stderr
    status = world.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    assert status["layout"] == "drizzle-v1"
    assert [a["id"] for a in status["applied"]] == ["20250101120000_init", "20250102090000_nick"]
    assert world.sql("SELECT created_at FROM drizzle.__drizzle_migrations ORDER BY id") == [
        (1735732800000,), (1735808400000,)
    ]  # fmt: skip


def test_run_is_audited_with_a_run_record(world: World) -> None:
    world.file("0001_users.sql", USERS)
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    audit = world.opsctl("audit", "-o", "json").json()
    runs = [a for a in audit if a["command"] == "db migrate run"]
    assert [a["outcome"] for a in runs][:2] in (["ok", "started"], ["started", "ok"])
    listed = world.opsctl("runs", "--all", "-o", "json").json()
    assert any(r["kind"] == "db migrate run" and r["state"] == "succeeded" for r in listed)


def test_unreachable_database_is_one_line_exit_4_and_the_password_never_shows(world: World) -> None:
    (world.tmp / "dsn.secret").write_text("postgresql://postgres:Sup3r-s3cret-PW@127.0.0.1:1/nope\n")
    world.file("0001_users.sql", USERS)
    for args in (("status", "app"), ("run", "app"), ("plan", "app", "-o", "json")):
        r = world.opsctl("--log-format", "json", "-v", "db", "migrate", *args)
        assert r.code == 4, r.stderr
        assert "unreachable" in r.stderr and "Traceback" not in r.stderr
        assert "Sup3r-s3cret-PW" not in r.stdout + r.stderr
    audit = world.opsctl("audit", "-o", "json")
    assert "Sup3r-s3cret-PW" not in audit.stdout
    assert any(a["command"] == "db migrate run" and a["outcome"] == "upstream" for a in audit.json())


def test_a_statement_nested_beyond_the_stack_limit_is_a_finding_not_a_crash(world: World) -> None:
    world.file("0001_deep.sql", "SELECT " + "1+" * 200_000 + "1;\n")
    lint = world.opsctl("db", "migrate", "lint", str(world.migrations), "-o", "json")
    assert lint.code == 1, lint.stderr
    assert [f["rule"] for f in lint.json()["findings"]] == ["syntax-error"]
    plan = world.opsctl("db", "migrate", "plan", "app", "-o", "json")
    assert plan.code == 0, plan.stderr
    assert "nested too deeply" in plan.json()["problems"][0]
    run = world.opsctl("db", "migrate", "run", "app")
    assert run.code == 3 and "syntax-error" in run.stderr


def test_sigterm_between_files_stops_after_the_current_file_and_the_rerun_resumes(world: World) -> None:
    import signal

    world.file("0001_users.sql", USERS)
    world.file("0002_slow.sql", "SELECT pg_sleep(1.5);\nALTER TABLE users ADD COLUMN nick text;\n")
    world.file("0003_more.sql", "ALTER TABLE users ADD COLUMN age int;\n")
    proc = world.start("db", "migrate", "run", "app")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if world.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(1.5)%%'")[0][0]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    # the file in flight finished as a whole (its transaction committed with its record); nothing after it ran
    assert applied_ids(world) == ["0001_users", "0002_slow"]
    assert world.sql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'age'") == [(0,)]
    again = world.opsctl("db", "migrate", "run", "app")
    assert again.code == 0, again.stderr
    assert applied_ids(world) == ["0001_users", "0002_slow", "0003_more"]


def test_partial_file_resumes_at_its_next_segment(world: World) -> None:
    world.file("0001_users.sql", USERS)
    assert world.opsctl("db", "migrate", "run", "app").code == 0
    world.sql("INSERT INTO users (email) VALUES ('a'), ('a')")
    world.file(
        "0002_two.sql",
        "ALTER TABLE users ADD COLUMN nick text;\n"
        "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);\n"
        "ALTER TABLE users ADD COLUMN age int;\n",
    )
    r = world.opsctl("db", "migrate", "run", "app")
    assert (
        r.code == 1 and "0002_two.sql:2" in r.stderr and "the first 1 segment(s) of the file stay applied" in r.stderr
    )
    row = world.sql("SELECT state, segments_done, segments FROM opsctl_migrations.applied WHERE id = '0002_two'")
    assert row == [("partial", 1, 3)]
    status = world.opsctl("db", "migrate", "status", "app", "-o", "json").json()
    assert ("0002_two", "partial") in [(d["id"], d["kind"]) for d in status["drift"]]
    world.sql("DELETE FROM users WHERE id = (SELECT max(id) FROM users)")
    ok = world.opsctl("db", "migrate", "run", "app")
    assert ok.code == 0, ok.stderr
    assert applied_ids(world) == ["0001_users", "0002_two"]
    cols = world.sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY 1")
    assert cols == [("age",), ("email",), ("id",), ("nick",)]
