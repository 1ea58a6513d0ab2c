"""One suite for both state stores (SQLite file, PostgreSQL schema) against the real engines."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from opsctl.errors import ExitCode, UpstreamError, UsageError
from opsctl.state import default_state_dir, open_store
from opsctl.state.base import AuditRecord, ConflictError, Event, LockInfo, Record, Store
from opsctl.state.schema import LATEST_VERSION, META_TABLE, SchemaTooNewError

if TYPE_CHECKING:
    from conftest import StoreSpec

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


def audit(at: datetime, *, service: str | None = "api", command: str = "deploy canary", **kw: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "user": "alice", "host": "box1", "env": "production", "args": {"image": "api:1.2", "steps": [5, 20]},
        "outcome": "ok", "dry_run": False, "trace_id": "t-1",
    }  # fmt: skip
    fields.update(kw)
    return AuditRecord(at=at, command=command, service=service, **fields)


def lock(key: str, token: str, at: datetime, ttl: float = 10.0) -> LockInfo:
    return LockInfo(key, token, "alice", "box1", 4242, "deploy canary", at, at + timedelta(seconds=ttl))


def set_version(spec: StoreSpec, version: int) -> None:
    """Write the schema version behind the store's back."""
    if spec.backend == "sqlite":
        with sqlite3.connect(spec.location) as db:
            db.execute(f"UPDATE {META_TABLE} SET version = ?", (version,))
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(spec.location, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.{} SET version = %s").format(sql.Identifier(spec.schema), sql.Identifier(META_TABLE)),
            (version,),
        )


# ------------------------------------------------------------------ schema


def test_fresh_store_has_the_latest_schema(store: Store, store_spec: StoreSpec) -> None:
    assert store.backend == store_spec.backend
    assert store.schema_version() == LATEST_VERSION == store.SCHEMA_VERSION
    assert store.list_audit() == []
    assert store.list_locks(T0) == []


def test_upgrade_in_place_keeps_data(store_spec: StoreSpec) -> None:
    old = store_spec.open(upgrade_to=1)
    assert old.schema_version() == 1
    ids = [old.add_audit(audit(T0 + timedelta(minutes=i), message=f"run {i}")) for i in range(3)]
    assert old.acquire_lock(lock("deploy/api@production", "tok", T0)) is None
    old.close()

    new = store_spec.open()
    try:
        assert new.schema_version() == LATEST_VERSION
        rows = new.list_audit()
        assert [r.id for r in rows] == ids
        assert [r.message for r in rows] == ["run 0", "run 1", "run 2"]
        assert new.get_lock("deploy/api@production", T0) is not None
        created = new.create_record(Record("incident", "INC-1", "api", "open", {"sev": 1}))
        assert new.get_record("incident", "INC-1") == created
    finally:
        new.close()
    reopened = store_spec.open()  # a current store opens without changes
    assert reopened.schema_version() == LATEST_VERSION
    assert len(reopened.list_audit()) == 3
    reopened.close()


def test_newer_schema_is_refused(store_spec: StoreSpec) -> None:
    store_spec.open().close()
    set_version(store_spec, LATEST_VERSION + 1)
    with pytest.raises(SchemaTooNewError) as caught:
        store_spec.open()
    error = caught.value
    assert isinstance(error, UsageError) and error.exit_code == ExitCode.USAGE
    assert error.message == (
        f"state store schema v{LATEST_VERSION + 1} is newer than this opsctl (v{LATEST_VERSION}); upgrade opsctl"
    )


# ------------------------------------------------------------------- audit


def test_audit_add_and_list(store: Store) -> None:
    berlin = timezone(timedelta(hours=1))
    first = store.add_audit(audit(T0 + timedelta(minutes=2), service="auth", outcome="refused", exit_code=3))
    second = store.add_audit(audit(T0, dry_run=True))  # older, added later
    third = store.add_audit(audit((T0 + timedelta(minutes=5)).astimezone(berlin), service=None, command="services"))
    assert len({first, second, third}) == 3

    rows = store.list_audit()
    assert [r.id for r in rows] == [second, first, third]  # oldest first, newest last
    assert [r.at for r in rows] == [T0, T0 + timedelta(minutes=2), T0 + timedelta(minutes=5)]
    assert all(r.at.utcoffset() == timedelta(0) for r in rows)
    assert rows[0] == audit(T0, dry_run=True, id=second)
    assert rows[1].outcome == "refused" and rows[1].exit_code == 3 and rows[1].dry_run is False
    assert rows[2].service is None

    assert [r.id for r in store.list_audit(service="api")] == [second]
    assert [r.id for r in store.list_audit(since=T0 + timedelta(minutes=2))] == [first, third]
    assert [r.id for r in store.list_audit(limit=2)] == [first, third]  # the newest two, still in order
    assert store.list_audit(service="auth", since=T0 + timedelta(minutes=3)) == []


# ----------------------------------------------------------------- records


def test_records_create_get_find(store: Store) -> None:
    made = [
        store.create_record(
            Record("incident", f"INC-{n}", service, status, {"n": n, "nested": {"a": [1, 2]}}, key=key,
                   created_at=T0 + timedelta(minutes=n))
        )
        for n, service, status, key in [
            (3, "api", "resolved", "api:5xx"), (1, "api", "open", "api:5xx"), (2, "auth", "acked", None),
        ]
    ]  # fmt: skip
    store.create_record(Record("deploy", "INC-1", "api", "open", {}))  # same id, other kind: fine
    assert made[0].created_at == T0 + timedelta(minutes=3) and made[0].updated_at == made[0].created_at

    got = store.get_record("incident", "INC-1")
    assert got == made[1] and got is not None
    assert got.data == {"n": 1, "nested": {"a": [1, 2]}} and got.version == 1 and got.key == "api:5xx"
    assert got.created_at is not None and got.created_at.tzinfo is not None
    assert store.get_record("incident", "INC-404") is None

    def ids(found: list[Record]) -> list[str]:
        return [r.id for r in found]

    assert ids(store.find_records("incident")) == ["INC-1", "INC-2", "INC-3"]  # oldest first
    assert ids(store.find_records("incident", service="api")) == ["INC-1", "INC-3"]
    assert ids(store.find_records("incident", key="api:5xx")) == ["INC-1", "INC-3"]
    assert ids(store.find_records("incident", statuses=["open", "acked"])) == ["INC-1", "INC-2"]
    assert ids(store.find_records("incident", service="api", statuses=["open"])) == ["INC-1"]
    assert ids(store.find_records("incident", statuses=[])) == []
    assert ids(store.find_records("incident", limit=2)) == ["INC-1", "INC-2"]
    assert ids(store.find_records("deploy")) == ["INC-1"]

    with pytest.raises(ConflictError):
        store.create_record(Record("incident", "INC-2", "auth", "open", {}))
    assert store.get_record("incident", "INC-2") == made[2]  # untouched


def test_update_record_optimistic_concurrency(store: Store) -> None:
    created = store.create_record(Record("deploy", "D-1", "api", "running", {"step": 5}, created_at=T0))
    mine = store.get_record("deploy", "D-1")
    theirs = store.get_record("deploy", "D-1")
    assert mine is not None and theirs is not None

    mine.status, mine.data = "promoted", {"step": 100}
    updated = store.update_record(mine)
    assert updated.version == 2 and updated.created_at == T0
    assert updated.updated_at is not None and created.updated_at is not None
    assert updated.updated_at > created.updated_at

    theirs.status = "rolled-back"
    with pytest.raises(ConflictError):
        store.update_record(theirs)  # stale: version 1
    stored = store.get_record("deploy", "D-1")
    assert stored is not None and (stored.status, stored.data, stored.version) == ("promoted", {"step": 100}, 2)

    again = store.update_record(replace(stored, status="done"))
    assert again.version == 3
    with pytest.raises(ConflictError):
        store.update_record(Record("deploy", "D-404", "api", "running", {}))


def test_events_keep_their_order(store: Store) -> None:
    store.create_record(Record("incident", "INC-1", "api", "open", {}))
    added = [
        store.add_event(Event("incident", "INC-1", T0 + timedelta(seconds=s), "alice", kind, {"i": i}))
        for i, (s, kind) in enumerate([(30, "declared"), (10, "acked"), (20, "update")])
    ]
    store.add_event(Event("incident", "INC-2", T0, "bob", "declared"))
    seqs = [e.seq or 0 for e in added]
    assert all(seqs) and seqs == sorted(seqs)
    events = store.list_events("incident", "INC-1")
    assert events == added
    assert [e.type for e in events] == ["declared", "acked", "update"]  # as added, not by time
    assert events[0].at == T0 + timedelta(seconds=30) and events[0].data == {"i": 0}
    assert store.list_events("deploy", "INC-1") == []


# ------------------------------------------------------------------- locks


def test_lock_acquire_contend_renew_release(store: Store) -> None:
    key = "deploy/api@production"
    a = lock(key, "token-a", T0)
    assert store.acquire_lock(a) is None
    assert store.acquire_lock(a) is None  # the owner may take it again
    holder = store.acquire_lock(lock(key, "token-b", T0 + timedelta(seconds=1)))
    assert holder == a
    assert store.get_lock(key, T0 + timedelta(seconds=1)) == a
    assert store.list_locks(T0) == [a]

    assert not store.renew_lock(key, "token-b", timedelta(seconds=30), T0 + timedelta(seconds=5))
    assert store.renew_lock(key, "token-a", timedelta(seconds=30), T0 + timedelta(seconds=5))
    renewed = store.get_lock(key, T0 + timedelta(seconds=20))  # alive past its first expiry
    assert renewed is not None and renewed.expires_at == T0 + timedelta(seconds=35)

    assert not store.release_lock(key, "token-b")
    assert store.get_lock(key, T0) is not None
    assert store.release_lock(key, "token-a")
    assert not store.release_lock(key, "token-a")
    assert store.get_lock(key, T0) is None
    assert store.acquire_lock(lock(key, "token-b", T0)) is None


def test_lock_expiry_and_break(store: Store) -> None:
    key, other = "drill/auth@staging", "deploy/api@production"
    assert store.acquire_lock(lock(key, "token-a", T0, ttl=10)) is None
    assert store.acquire_lock(lock(other, "token-c", T0, ttl=60)) is None
    assert [i.key for i in store.list_locks(T0)] == sorted([key, other])

    later = T0 + timedelta(seconds=11)
    assert store.get_lock(key, later) is None
    assert [i.key for i in store.list_locks(later)] == [other]
    assert not store.renew_lock(key, "token-a", timedelta(seconds=10), later)  # a lapsed lease is gone
    assert store.acquire_lock(lock(key, "token-b", later)) is None
    assert not store.release_lock(key, "token-a")
    holder = store.get_lock(key, later)
    assert holder is not None and holder.token == "token-b"

    broken = store.break_lock(key)
    assert broken is not None and broken.token == "token-b"
    assert store.get_lock(key, later) is None
    assert store.break_lock(key) is None
    assert store.get_lock(other, later) is not None


def _race(spec: StoreSpec, barrier: Any, results: Any, n: int) -> None:
    store = spec.open()  # fresh store: the openers race on creating the schema too
    try:
        barrier.wait(timeout=20)
        now = datetime.now(UTC)
        holder = store.acquire_lock(lock("race/api@production", f"worker-{n}", now, ttl=30))
        results.put((n, holder is None))
    finally:
        store.close()


def test_concurrent_acquire_has_exactly_one_winner(store_spec: StoreSpec) -> None:
    ctx = multiprocessing.get_context("fork")
    workers = 4
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(store_spec, barrier, results, n)) for n in range(workers)]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    winners = [n for n, won in outcomes.items() if won]
    assert len(outcomes) == workers and len(winners) == 1

    store = store_spec.open()
    try:
        holder = store.get_lock("race/api@production", datetime.now(UTC))
        assert holder is not None and holder.token == f"worker-{winners[0]}"
        assert store.schema_version() == LATEST_VERSION
    finally:
        store.close()


# ------------------------------------------------------------ opening stores


def test_open_store_and_state_dir(tmp_path: Path, pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    local = open_store(None, tmp_path / "nested" / "state")
    try:
        assert local.backend == "sqlite" and local.location == str(tmp_path / "nested" / "state" / "opsctl.db")
        assert stat.S_IMODE(os.stat(tmp_path / "nested" / "state").st_mode) & 0o077 == 0
        assert stat.S_IMODE(os.stat(local.location).st_mode) & 0o077 == 0
        with sqlite3.connect(local.location) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        local.close()

    shared = open_store(pg_url.replace("postgresql://", "postgres://", 1), tmp_path, schema=pg_schema)
    try:
        assert shared.backend == "postgres" and shared.schema_version() == LATEST_VERSION
    finally:
        shared.close()

    with pytest.raises(UsageError, match="unsupported state store URL") as caught:
        open_store("mysql://root:hunter22@db/ops", tmp_path)
    assert "hunter22" not in str(caught.value)

    monkeypatch.setenv("OPSCTL_STATE_DIR", str(tmp_path / "elsewhere"))
    assert default_state_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("OPSCTL_STATE_DIR")
    assert default_state_dir().name == "opsctl"


def test_unreachable_postgres_never_shows_the_password() -> None:
    from opsctl.state.postgres import PostgresStore

    with pytest.raises(UpstreamError) as caught:
        PostgresStore("postgresql://ops:Sup3rSecretPw@127.0.0.1:1/state", connect_timeout=2)
    error = caught.value
    assert error.exit_code == ExitCode.UPSTREAM
    assert error.message.startswith("state store unreachable at postgresql://ops:***@127.0.0.1:1/state: ")
    assert "Sup3rSecretPw" not in " ".join(error.lines())


# ------------------------------------------------------------------ runs


def _run(run_id: str, token: str, at: datetime, **kw: Any) -> Any:
    from opsctl.state.base import RunRecord

    fields: dict[str, Any] = {
        "id": run_id, "kind": "deploy canary", "service": "api", "env": "production", "state": "running",
        "driver_user": "alice", "driver_host": "box1", "driver_pid": 4242, "token": token, "lease_seconds": 60.0,
        "started_at": at, "heartbeat_at": at, "lock_key": "deploy/api@production",
    }  # fmt: skip
    fields.update(kw)
    return RunRecord(**fields)


def test_runs_are_written_only_by_their_driver_and_taken_over_once(store: Store) -> None:
    run = _run("RUN-0000000A", "tok-a", T0, plan=[{"name": "shift 5%"}], params={"image": "api:2"})
    store.create_run(run)
    with pytest.raises(ConflictError):
        store.create_run(run)
    run.step, run.step_index, run.data = "shift 5%", 1, {"weights": [95, 5]}
    assert store.update_run(run)
    assert not store.update_run(replace(run, token="intruder", state="succeeded"))
    assert store.heartbeat_run(run.id, "tok-a", T0 + timedelta(seconds=30), {"done": 1, "total": 4})
    assert not store.heartbeat_run(run.id, "intruder", T0 + timedelta(seconds=31), None)
    got = store.get_run(run.id)
    assert got is not None and got.data == {"weights": [95, 5]} and got.params == {"image": "api:2"}
    assert got.progress == {"done": 1, "total": 4} and got.heartbeat_at == T0 + timedelta(seconds=30)
    later = T0 + timedelta(minutes=5)
    new = replace(got, token="tok-b", driver_user="bob", heartbeat_at=later)
    assert not store.takeover_run(new, "tok-a", T0)  # heartbeat not stale before T0: refused
    assert store.takeover_run(new, "tok-a", later - timedelta(seconds=60))
    assert not store.takeover_run(replace(new, token="tok-c"), "tok-a", later)  # the old token is gone
    taken = store.get_run(run.id)
    assert taken is not None and (taken.token, taken.driver_user) == ("tok-b", "bob")
    store.create_run(_run("RUN-0000000B", "t", T0 + timedelta(minutes=1), service="auth", state="succeeded"))
    assert [r.id for r in store.list_runs()] == ["RUN-0000000B", "RUN-0000000A"]  # newest first
    assert [r.id for r in store.list_runs(states=["running"])] == ["RUN-0000000A"]
    assert [r.id for r in store.list_runs(service="auth", env="production")] == ["RUN-0000000B"]
    assert store.list_runs(states=[]) == [] and store.get_run("RUN-NOPE") is None


def test_upgrade_from_v2_adds_runs_and_keeps_audit(store_spec: StoreSpec) -> None:
    old = store_spec.open(upgrade_to=2)
    old.add_audit(audit(T0, message="before runs existed"))
    old.close()
    new = store_spec.open()
    try:
        assert new.schema_version() == LATEST_VERSION
        [entry] = new.list_audit()
        assert entry.message == "before runs existed" and entry.run_id is None
        new.create_run(_run("RUN-0000000C", "t", T0))
        new.add_audit(audit(T0, run_id="RUN-0000000C"))
        assert new.list_audit()[-1].run_id == "RUN-0000000C"
    finally:
        new.close()
