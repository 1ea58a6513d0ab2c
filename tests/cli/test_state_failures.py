"""The state store failing under a real ``opsctl``: a full disk, a damaged file, bad settings.

A full disk is the file size limit of the opsctl process (``RLIMIT_FSIZE``, set between fork and
exec): SQLite's writes past it fail with EFBIG.  On PostgreSQL a trigger makes the server write
to ``/dev/full`` (SQLSTATE 53100).  Each failure must be one clear line with its exit code, never
a traceback, and the audit record of the failed command must survive: spooled next to the state
(and printed on stderr), then moved into the audit log by the next command that can write.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import OPSCTL
from tests.conftest import PG_ADMIN_URL, _drop_database

DECLARE = ("incident", "declare", "api", "--sev", "2", "--title", "x")


def opsctl(*args: str, fsize: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real entry point; ``fsize`` limits the size of every file it writes (bytes)."""

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [str(OPSCTL), *args], capture_output=True, text=True, env=dict(os.environ), timeout=timeout,
        preexec_fn=limit, check=False,
    )  # fmt: skip


def clean(stderr: str) -> None:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr


def spooled(stderr: str, state: Path) -> dict[str, Any]:
    """The failed command's outcome record, both spooled and printed on stderr (the same record)."""
    printed = [
        json.loads(line.split("audit record: ", 1)[1]) for line in stderr.splitlines() if "audit record: " in line
    ]
    kept = [json.loads(line) for line in (state / "audit-spool.jsonl").read_text().splitlines()]
    outcomes = [r for r in kept if r["outcome"] != "started"]
    assert [r for r in printed if r["outcome"] != "started"] == outcomes and len(outcomes) == 1, stderr
    return outcomes[0]


def recovered(record: dict[str, Any], state: Path, *config: str) -> None:
    """With room again, the next command that writes moves the spooled record into the audit log."""
    after = opsctl(*config, "--yes", "incident", "declare", "auth", "--sev", "4", "--title", "room again")
    assert after.returncode == 0, after.stderr
    assert not (state / "audit-spool.jsonl").exists()
    logged = json.loads(opsctl(*config, "-o", "json", "audit", "--service", "api").stdout)
    matching = [a for a in logged if a["trace_id"] == record["trace_id"] and a["outcome"] == record["outcome"]]
    assert len(matching) == 1
    assert {k: matching[0][k] for k in ("command", "exit_code", "message")} == {
        k: record[k] for k in ("command", "exit_code", "message")
    }


def warm(isolated: Path) -> Path:
    state = isolated / "state"
    first = opsctl("incident", "declare", "auth", "--sev", "4", "--title", "warm up")
    assert first.returncode == 0, first.stderr
    return state


def test_full_disk_when_opening_the_store(isolated: Path) -> None:
    state = warm(isolated)
    full = opsctl(*DECLARE, fsize=16 * 1024)  # not even the 32 KiB shared-memory index fits

    assert full.returncode == 4, full.stderr
    clean(full.stderr)
    assert full.stderr.splitlines()[-1] == (
        f"error: disk full at {state / 'opsctl.db'}: the file size limit of this process (ulimit -f) is 16384 bytes"
        " (disk I/O error); free space there (or raise the file size limit) and rerun; nothing was half-written"
        " (SQLite rolls back a write it cannot finish)"
    )
    assert full.stdout == ""
    record = spooled(full.stderr, state)
    assert (record["command"], record["service"], record["outcome"], record["exit_code"]) == (
        "incident declare", "api", "upstream", 4,
    )  # fmt: skip
    assert record["message"].startswith(f"disk full at {state / 'opsctl.db'}: ")
    recovered(record, state)


@pytest.mark.parametrize("fsize", [32 * 1024, 48 * 1024, 64 * 1024])
def test_full_disk_in_the_middle_of_a_run(isolated: Path, fsize: int) -> None:
    state = warm(isolated)
    full = opsctl(*DECLARE, fsize=fsize)  # the WAL fills after a few writes: lock, run, plan, audit, steps

    assert full.returncode == 4, full.stderr
    clean(full.stderr)
    assert full.stderr.splitlines()[-1].startswith(f"error: disk full at {state / 'opsctl.db'}: ")
    record = spooled(full.stderr, state)
    assert (record["command"], record["service"], record["exit_code"]) == ("incident declare", "api", 4)
    assert "disk full at" in record["message"]
    db = sqlite3.connect(state / "opsctl.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    recovered(record, state)


# ---------------------------------------------------------------- damage


def test_a_damaged_page_is_exit_4_with_what_to_do(isolated: Path) -> None:
    state = warm(isolated)
    path = state / "opsctl.db"
    with sqlite3.connect(path) as db:
        page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'audit'").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with path.open("r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\x07garbage" * (size // 8))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    shown = opsctl("-o", "json", "audit")
    assert shown.returncode == 4 and shown.stdout == ""
    assert shown.stderr.splitlines() == [
        f"error: state store at {path} is damaged (database disk image is malformed); keep the file, it holds the"
        " audit log: move opsctl.db and its -wal and -shm files aside (the next opsctl starts a new store) and"
        " salvage rows with 'sqlite3 FILE .recover'"
    ]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_a_file_that_is_no_database_refuses_changes_and_keeps_their_audit(isolated: Path) -> None:
    state = isolated / "state"
    state.mkdir(mode=0o700)
    (state / "opsctl.db").write_text("these are my notes, not a database\n" * 50)

    declared = opsctl(*DECLARE)
    assert declared.returncode == 4
    clean(declared.stderr)
    assert declared.stderr.splitlines()[-1].startswith(
        f"error: state store at {state / 'opsctl.db'} is damaged (file is not a database); keep the file"
    )
    record = spooled(declared.stderr, state)
    assert (record["outcome"], record["exit_code"]) == ("upstream", 4)
    assert (state / "opsctl.db").read_text() == "these are my notes, not a database\n" * 50


def test_a_damaged_schema_version_is_refused(isolated: Path) -> None:
    path = warm(isolated) / "opsctl.db"
    with sqlite3.connect(path) as db:
        db.execute("UPDATE opsctl_schema SET version = 0")
    db.close()

    shown = opsctl("audit")
    assert shown.returncode == 4
    assert shown.stderr.splitlines() == [
        f"error: state store at {path} has a damaged schema version (version 0 is recorded, yet it holds the tables"
        " audit, events, locks, records, runs); opsctl left it untouched; its tables are those of v3: if that is"
        " right, record version 3 in its opsctl_schema row (singleton = 1), else set the store aside, and keep it:"
        " it holds the audit log"
    ]


# ------------------------------------------------------------- settings


def configured(isolated: Path, example_config: Path, url: str) -> str:
    path = isolated / "opsctl.yaml"
    path.write_text(example_config.read_text().replace("state:\n", f"state:\n  url: '{url}'\n", 1))
    return str(path)


BAD_URLS = {
    "postgresql://[::1": "invalid state store URL postgresql://[::1: Invalid IPv6 URL",
    "postgresql://127.0.0.1:notaport/db": 'invalid state store URL postgresql://127.0.0.1:notaport/db: invalid integer value "notaport" for connection option "port"',
    "postgresql://127.0.0.1:99999/db": 'invalid state store URL postgresql://127.0.0.1:99999/db: invalid port number: "99999"',
    "postgresql://127.0.0.1/db?sslmode=maybe": 'invalid state store URL postgresql://127.0.0.1/db?sslmode=maybe: invalid sslmode value: "maybe"',
    "postgresql://127.0.0.1/db?bogus=1": 'invalid state store URL postgresql://127.0.0.1/db?bogus=1: invalid URI query parameter: "bogus"',
    "mysql://127.0.0.1/db": "unsupported state store URL 'mysql://127.0.0.1/db'",
}


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_state_url_is_exit_2_in_one_line(isolated: Path, example_config: Path, url: str) -> None:
    shown = opsctl("-c", configured(isolated, example_config, url), "audit")
    assert shown.returncode == 2
    [line] = shown.stderr.splitlines()
    assert line.startswith(f"error: {BAD_URLS[url]}; ")


def test_a_malformed_state_url_with_a_password_never_shows_it(isolated: Path, example_config: Path) -> None:
    secret = isolated / "state-url"
    secret.write_text("postgresql://ops:S3cretPw@[::1/state")
    secret.chmod(0o600)
    shown = opsctl("-c", configured(isolated, example_config, f"file:{secret}"), "--yes", *DECLARE)
    assert shown.returncode == 2
    clean(shown.stderr)
    assert "invalid state store URL" in shown.stderr.splitlines()[-1]
    assert "S3cretPw" not in shown.stderr + shown.stdout
    spool = isolated / "state" / "audit-spool.jsonl"
    assert "S3cretPw" not in (spool.read_text() if spool.exists() else "")


def test_unreachable_postgres_stays_one_line_exit_4(isolated: Path, example_config: Path) -> None:
    config = configured(isolated, example_config, "postgresql://postgres@127.0.0.1:1/state")
    shown = opsctl("-c", config, "audit")
    assert shown.returncode == 4
    [line] = shown.stderr.splitlines()
    assert line.startswith("error: state store unreachable at postgresql://postgres@127.0.0.1:1/state: ")


@pytest.fixture
def pg_database() -> Iterator[str]:
    name = f"opsctl_cli_{uuid.uuid4().hex[:10]}"
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    _drop_database(name)


@pytest.mark.parametrize(
    "state_dir",
    ["kept", "not made yet"],
)
def test_full_disk_on_the_postgres_server(
    isolated: Path, example_config: Path, pg_database: str, state_dir: str
) -> None:
    import psycopg

    config = ("-c", configured(isolated, example_config, pg_database))
    first = opsctl(*config, "--yes", "incident", "declare", "auth", "--sev", "4", "--title", "warm up")
    assert first.returncode == 0, first.stderr
    if state_dir == "kept":  # the local state dir exists (an earlier SQLite store, a config cache)
        (isolated / "state").mkdir(mode=0o700, exist_ok=True)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION opsctl.full_disk() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " EXECUTE 'COPY (SELECT 1) TO ''/dev/full'''; RETURN COALESCE(NEW, OLD); END $$"
        )
        for table in ("audit", "locks", "records", "events", "runs"):
            conn.execute(
                f"CREATE TRIGGER full_disk BEFORE INSERT OR UPDATE OR DELETE ON opsctl.{table}"
                " FOR EACH ROW EXECUTE FUNCTION opsctl.full_disk()"
            )

    full = opsctl(*config, "--yes", *DECLARE)
    assert full.returncode == 4, full.stderr
    clean(full.stderr)
    assert full.stderr.splitlines()[-1] == (
        f'error: disk full at {pg_database}: could not close file "/dev/full": No space left on device; free space'
        " on the PostgreSQL server's data volume (ask its DBA) and rerun; the failed write was rolled back"
    )
    printed = [
        json.loads(line.split("audit record: ", 1)[1]) for line in full.stderr.splitlines() if "audit record: " in line
    ]
    assert [(r["command"], r["outcome"], r["exit_code"]) for r in printed] == [("incident declare", "upstream", 4)]
    record = spooled(full.stderr, isolated / "state")

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("DROP FUNCTION opsctl.full_disk() CASCADE")
    recovered(record, isolated / "state", *config)
