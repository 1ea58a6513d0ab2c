"""The SQLite store on a full disk, on a damaged file and under a careless umask, for real.

A full disk is made with the file size limit of a child process (``RLIMIT_FSIZE``: writes past
it fail with EFBIG, which SQLite reports as a plain I/O error) and with SQLite's own page limit
(``max_page_count``: SQLITE_FULL); a damaged store is a real one with garbage written over a page.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsctl.errors import ExitCode, UpstreamError
from opsctl.state.base import AuditRecord, Event, LockInfo, Record, RunRecord, Store
from opsctl.state.sqlite import SQLiteStore

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
KEY = "deploy/api@production"
LIMIT = 48 * 1024  # room for the 32 KiB shared-memory index and a few WAL frames, not for the database


def audit(n: int, pad: int = 3000) -> AuditRecord:
    return AuditRecord(
        at=T0 + timedelta(seconds=n), user="alice", host="box1", command="deploy canary", service="api",
        env="production", args={"n": n, "pad": "x" * pad}, outcome="ok", dry_run=False, trace_id=f"t-{n}",
    )  # fmt: skip


def run_record(token: str, state: str = "running") -> RunRecord:
    return RunRecord(
        id="RUN-1", kind="deploy canary", service="api", env="production", state=state, driver_user="alice",
        driver_host="box1", driver_pid=4242, token=token, lease_seconds=30.0, started_at=T0, heartbeat_at=T0,
    )  # fmt: skip


def seed(store: Store) -> None:
    """A lock, a record and a run, so that every write path has something to change."""
    store.add_audit(audit(0))
    store.acquire_lock(LockInfo(KEY, "tok", "alice", "box1", 1, "deploy", T0, T0 + HOUR))
    store.create_record(Record("incident", "INC-1", "api", "open", {"sev": 2}, created_at=T0))
    store.create_run(run_record("run-token"))


def write_paths(store: Store) -> dict[str, Callable[[], object]]:
    """Every kind of write, each one changing rows of a seeded store (a no-op write needs no room)."""
    record, run = store.get_record("incident", "INC-1"), store.get_run("RUN-1")
    assert record is not None and run is not None
    return {
        "add_audit": lambda: store.add_audit(audit(999, pad=10)),
        "acquire_lock": lambda: store.acquire_lock(LockInfo("drill/x@staging", "t2", "a", "h", 1, "c", T0, T0 + HOUR)),
        "renew_lock": lambda: store.renew_lock(KEY, "tok", HOUR, T0 + HOUR / 2),
        "release_lock": lambda: store.release_lock(KEY, "tok"),
        "break_lock": lambda: store.break_lock(KEY),
        "create_record": lambda: store.create_record(Record("incident", "INC-2", "api", "open", {})),
        "update_record": lambda: store.update_record(replace(record, status="resolved")),
        "add_event": lambda: store.add_event(Event("incident", "INC-1", T0, "alice", "note", {"n": 1})),
        "create_run": lambda: store.create_run(replace(run, id="RUN-2")),
        "update_run": lambda: store.update_run(replace(run, message="changed")),
        "heartbeat_run": lambda: store.heartbeat_run("RUN-1", "run-token", T0 + HOUR, {"p": 1}),
        "takeover_run": lambda: store.takeover_run(replace(run, token="new-token"), "run-token", T0 + HOUR),
    }


WRITES = (
    "add_audit", "acquire_lock", "renew_lock", "release_lock", "break_lock", "create_record", "update_record",
    "add_event", "create_run", "update_run", "heartbeat_run", "takeover_run",
)  # fmt: skip


def unchanged(rows: Callable[[str], list[tuple[Any, ...]]], audits: int) -> None:
    """The seeded store as it was (plus ``audits`` audit rows in all): no failed write left a trace."""
    assert rows("SELECT count(*) FROM audit") == [(audits,)]
    assert rows("SELECT status, version FROM records") == [("open", 1)]
    assert rows("SELECT count(*) FROM events") == [(0,)]
    assert rows("SELECT id, token, message FROM runs") == [("RUN-1", "run-token", "")]
    assert rows("SELECT key, token FROM locks") == [(KEY, "tok")]


# Opens the store under the file size limit, fills the WAL up to it, then tries every write path.
FULL_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from datetime import timedelta
    from opsctl.errors import OpsctlError
    from opsctl.state.sqlite import SQLiteStore
    from tests.integration.test_store_failures import HOUR, KEY, T0, audit, write_paths

    path, limit = sys.argv[1], int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    store = SQLiteStore(path)
    added = renewed = 0
    try:
        for n in range(1, 200):
            store.add_audit(audit(n))
            added += 1
    except OpsctlError:
        pass
    try:  # one page a time, until not even one more fits
        for n in range(1, 200):
            store.renew_lock(KEY, "tok", HOUR, T0 + timedelta(seconds=n))
            renewed += 1
    except OpsctlError:
        pass
    outcomes = {}
    for name, write in write_paths(store).items():
        try:
            write()
            outcomes[name] = "written"
        except OpsctlError as exc:
            outcomes[name] = [type(exc).__name__, int(exc.exit_code), exc.lines()[0]]
        except Exception as exc:
            outcomes[name] = ["raw", type(exc).__name__, str(exc)]
    readable = len(store.list_audit())
    store.close()
    print(json.dumps({"added": added, "renewed": renewed, "outcomes": outcomes, "readable": readable}))
    """
)


def child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]  # for tests.integration.test_store_failures; opsctl as installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run(
        [sys.executable, "-B", "-c", script, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_every_write_on_a_full_disk_is_a_clean_disk_full_error_and_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "opsctl.db"
    store = SQLiteStore(path)
    seed(store)
    store.close()
    assert path.stat().st_size + 2 * 65536 > LIMIT  # the limit is what stops the writes, not free space

    done = child(FULL_CHILD, str(path), str(LIMIT))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert 0 < report["added"] < 199 and report["renewed"] < 199  # the limit was reached
    assert report["readable"] == 1 + report["added"]  # reads go on
    expected = (
        f"disk full at {path}: the file size limit of this process (ulimit -f) is {LIMIT} bytes (disk I/O error);"
        " free space there (or raise the file size limit) and rerun; nothing was half-written"
        " (SQLite rolls back a write it cannot finish)"
    )
    assert sorted(report["outcomes"]) == sorted(WRITES)
    assert all(outcome == ["UpstreamError", ExitCode.UPSTREAM, expected] for outcome in report["outcomes"].values())

    db = sqlite3.connect(path)  # consistent, and exactly what was committed before the disk filled
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        unchanged(lambda q: db.execute(q).fetchall(), 1 + report["added"])
    finally:
        db.close()
    store = SQLiteStore(path)  # with room again, the store takes writes
    try:
        assert store.add_audit(audit(1000, pad=10)) > 0
        assert len(store.list_audit()) == 2 + report["added"]
    finally:
        store.close()


def test_sqlite_full_database_is_a_disk_full_error(tmp_path: Path) -> None:
    """SQLITE_FULL ("database or disk is full"), as a full filesystem gives it; here from SQLite's page limit."""
    path = tmp_path / "opsctl.db"
    store = SQLiteStore(path)
    try:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages + 2}")
        written = 0
        with pytest.raises(UpstreamError) as caught:
            for n in range(100):
                store.add_audit(audit(n))
                written += 1
        error = caught.value
        assert error.exit_code == ExitCode.UPSTREAM
        assert error.message == f"disk full at {path}: database or disk is full"
        assert "free space" in (error.hint or "")
        assert written < 100 and len(store.list_audit()) == written  # the failed insert left nothing behind
        store._db.execute("PRAGMA max_page_count = 1000000")
        store.add_audit(audit(500))  # the connection is usable again
        assert len(store.list_audit()) == written + 1
    finally:
        store.close()


# ------------------------------------------------------------------ damage


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _garbage_over_page(table: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        with sqlite3.connect(path) as db:
            page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            size = db.execute("PRAGMA page_size").fetchone()[0]
        db.close()
        with path.open("r+b") as f:
            f.seek((page - 1) * size)
            f.write(bytes((i * 151 + 7) % 256 for i in range(size)))

    return damage


def _header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"this is no SQLite header" * 8)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "a page of the audit table": (_garbage_over_page("audit"), "database disk image is malformed"),
    "the first page": (_header, "file is not a database"),
    "truncated": (lambda p: os.truncate(p, p.stat().st_size // 2), "database disk image is malformed"),
    "not a database at all": (lambda p: p.write_text("[state]\nnot = 'sqlite'\n" * 200), "file is not a database"),
}


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_file_is_reported_as_damaged_and_left_untouched(tmp_path: Path, how: str) -> None:
    path = tmp_path / "opsctl.db"
    store = SQLiteStore(path)
    for n in range(40):
        store.add_audit(audit(n))
    store.close()
    damage, reason = DAMAGE[how]
    damage(path)
    before = _digest(path)

    with pytest.raises(UpstreamError) as caught:
        opened = SQLiteStore(path)  # a damaged header fails here, a damaged data page when it is read
        try:
            opened.list_audit()
        finally:
            opened.close()
    error = caught.value
    assert error.exit_code == ExitCode.UPSTREAM
    assert error.message == f"state store at {path} is damaged ({reason})"
    assert error.hint is not None and "keep the file, it holds the audit log" in error.hint
    assert "move opsctl.db and its -wal and -shm files aside" in error.hint and ".recover" in error.hint
    assert len(error.lines()) == 1
    assert _digest(path) == before  # nothing was "repaired" over the evidence


# ------------------------------------------------------------- permissions

UMASK_CHILD = textwrap.dedent(
    """
    import json, os, stat, sys
    from pathlib import Path
    os.umask(0)
    from opsctl.state import open_store
    state = Path(sys.argv[1]) / "a" / "b" / "state"
    store = open_store(None, state)
    names = [state.parents[1], state.parent, state, *(Path(store.location + s) for s in ("", "-wal", "-shm"))]
    modes = {str(p): oct(stat.S_IMODE(os.stat(p).st_mode)) for p in names}
    store.close()
    print(json.dumps(modes))
    """
)


def test_state_dir_and_database_files_are_private_under_umask_000(tmp_path: Path) -> None:
    done = child(UMASK_CHILD, str(tmp_path))
    assert done.returncode == 0, done.stderr
    modes = json.loads(done.stdout)
    state = tmp_path / "a" / "b" / "state"
    assert modes == {
        str(tmp_path / "a"): "0o700",
        str(tmp_path / "a" / "b"): "0o700",
        str(state): "0o700",
        str(state / "opsctl.db"): "0o600",
        str(state / "opsctl.db-wal"): "0o600",
        str(state / "opsctl.db-shm"): "0o600",
    }
