"""The lock holder over every backend: the store's table (SQLite, PostgreSQL) and real Redis."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsctl.errors import ExitCode, RefusedError, UpstreamError
from opsctl.state.base import LockInfo, Store
from opsctl.state.locks import (
    LockBackend,
    LockHeldError,
    RedisLockBackend,
    StoreLockBackend,
    hold,
    lock_key,
)
from opsctl.timeutil import isoformat

KEY = lock_key("deploy", "api", "production")


@dataclass
class Backend:
    name: str
    impl: LockBackend
    argv: list[str]  # how a child process reaches the same backend


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "redis":
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        redis_backend = RedisLockBackend(url, prefix=prefix)
        yield Backend("redis", redis_backend, ["redis", url, prefix])
        redis_backend.close()
        return
    if request.param == "sqlite":
        from opsctl.state.sqlite import SQLiteStore

        path = tmp_path / "opsctl.db"
        store: Store = SQLiteStore(path)
        argv = ["sqlite", str(path), ""]
    else:
        from opsctl.state.postgres import PostgresStore

        url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
        store = PostgresStore(url, schema)
        argv = ["postgres", url, schema]
    yield Backend(request.param, StoreLockBackend(store), argv)
    store.close()


def info(token: str, *, ttl: float = 10.0, key: str = KEY) -> LockInfo:
    now = datetime.now(UTC)
    return LockInfo(key, token, "carol", "box3", 7, "drill failover", now, now + timedelta(seconds=ttl))


def test_lock_key() -> None:
    assert lock_key("drill", "auth", "staging") == "drill/auth@staging"


def test_second_holder_is_refused_with_who_and_since(backend: Backend) -> None:
    ttl = timedelta(seconds=5)
    with hold(backend.impl, KEY, command="deploy canary", ttl=ttl, user="alice", host="box1", pid=4242) as first:
        assert first.info is not None
        with pytest.raises(RefusedError) as caught, hold(backend.impl, KEY, command="deploy rollback", ttl=ttl):
            pytest.fail("the second holder got in")
        error = caught.value
        assert isinstance(error, LockHeldError) and error.exit_code == ExitCode.REFUSED
        since = isoformat(first.info.acquired_at)
        assert error.message == f"{KEY} is locked by alice@box1 (pid 4242, running 'deploy canary') since {since}"
        assert error.hint is not None and "opsctl --env production unlock deploy api" in error.hint
        assert str(isoformat(first.info.expires_at)) in error.hint
        assert error.holder.token == first.token
    # released on exit: the next one gets it
    with hold(backend.impl, KEY, command="deploy rollback", ttl=ttl, user="bob") as second:
        holder = backend.impl.holder(KEY, datetime.now(UTC))
        assert holder is not None and holder.user == "bob" and holder.token == second.token
    assert backend.impl.holder(KEY, datetime.now(UTC)) is None


def test_renewal_keeps_the_lock_past_its_ttl(backend: Backend) -> None:
    """Deterministic: the clock is injected and each renewal is one ``beat()``."""
    from tests.conftest import FakeClock

    clock = FakeClock(datetime.now(UTC))
    held = hold(backend.impl, KEY, command="db restore", ttl=timedelta(seconds=10), clock=clock, background=False)
    held.acquire()
    try:
        for _ in range(3):  # each beat comes within the lease: the lock outlives its ttl several times
            clock.advance(seconds=7)
            assert held.beat() and not held.lost
            assert backend.impl.acquire(info("intruder")) is not None
            holder = backend.impl.holder(KEY, clock())
            assert holder is not None and holder.token == held.token
            assert holder.expires_at == clock() + timedelta(seconds=10) or backend.name == "redis"
    finally:
        held.release()
    assert backend.impl.holder(KEY, clock()) is None


def test_a_lease_not_renewed_in_time_is_lost_and_the_hooks_stop_with_it(store: Store) -> None:
    """On the store backends, whose expiry follows the injected clock (Redis expires keys by its
    own clock: the crash test covers it)."""
    from tests.conftest import FakeClock

    backend = Backend(store.backend, StoreLockBackend(store), [])
    clock = FakeClock(datetime.now(UTC))
    beats: list[datetime] = []
    lost: list[str] = []
    held = hold(backend.impl, KEY, command="db restore", ttl=timedelta(seconds=10), clock=clock, background=False)
    held.on_beat("run", lambda now: beats.append(now) or True)
    held.on_lost(lost.append)
    held.acquire()
    clock.advance(seconds=5)
    assert held.beat() and beats == [clock()]
    clock.advance(seconds=11)  # frozen past the lease
    assert not held.beat() and held.lost and lost and "lease expired" in held.lost_reason
    assert len(beats) == 1  # no heartbeat on a lost lease
    held.release()


_CHILD = """
import sys, time
from datetime import timedelta
from pathlib import Path
from opsctl.state.locks import RedisLockBackend, StoreLockBackend, hold

kind, where, extra, key = sys.argv[1:5]
if kind == "redis":
    backend = RedisLockBackend(where, prefix=extra)
elif kind == "sqlite":
    from opsctl.state.sqlite import SQLiteStore
    backend = StoreLockBackend(SQLiteStore(Path(where)))
else:
    from opsctl.state.postgres import PostgresStore
    backend = StoreLockBackend(PostgresStore(where, extra))
with hold(backend, key, command="crashy restore", ttl=timedelta(seconds=1)):
    print("held", flush=True)
    time.sleep(60)
"""


def test_crashed_holder_lock_expires_after_ttl(backend: Backend, child_env: dict[str, str]) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *backend.argv, KEY], stdout=subprocess.PIPE, text=True, env=child_env
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        time.sleep(1.5)  # past one ttl: the live child's heartbeat thread has renewed it
        holder = backend.impl.holder(KEY, datetime.now(UTC))
        assert holder is not None and holder.pid == child.pid and holder.command == "crashy restore"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    killed = time.monotonic()

    with pytest.raises(LockHeldError):  # nobody released it
        hold(backend.impl, KEY, command="deploy canary", ttl=timedelta(seconds=5)).acquire()
    while True:  # it frees itself once the lease runs out (a hang guard, not a timing check)
        try:
            with hold(backend.impl, KEY, command="deploy canary", ttl=timedelta(seconds=5)):
                break
        except LockHeldError:
            assert time.monotonic() - killed < 30.0, "the dead holder's lock never expired"
            time.sleep(0.05)


def test_only_the_owner_may_renew_or_release(backend: Backend) -> None:
    mine = info("token-mine")
    assert backend.impl.acquire(mine) is None
    now = datetime.now(UTC)
    assert not backend.impl.release(KEY, "token-other")
    assert not backend.impl.renew(KEY, "token-other", timedelta(seconds=30), now)
    holder = backend.impl.holder(KEY, now)
    assert holder is not None and holder.token == "token-mine"
    assert backend.impl.renew(KEY, "token-mine", timedelta(seconds=30), now)
    assert backend.impl.release(KEY, "token-mine")
    assert backend.impl.holder(KEY, now) is None
    assert not backend.impl.release(KEY, "token-mine")


def test_list_and_break(backend: Backend) -> None:
    other = lock_key("drill", "auth", "staging")
    assert backend.impl.acquire(info("a", key=other)) is None
    assert backend.impl.acquire(info("b")) is None
    assert [i.key for i in backend.impl.list(datetime.now(UTC))] == sorted([KEY, other])
    broken = backend.impl.break_(other)
    assert broken is not None and broken.token == "a" and broken.user == "carol" and broken.pid == 7
    assert backend.impl.break_(other) is None
    assert [i.key for i in backend.impl.list(datetime.now(UTC))] == [KEY]


def test_a_lost_lock_is_reported_and_not_released(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="opsctl.locks"):
        held = hold(backend.impl, KEY, command="deploy canary", ttl=timedelta(seconds=30), background=False)
        with held:
            assert backend.impl.break_(KEY) is not None  # 'opsctl unlock' by someone else
            assert backend.impl.acquire(info("successor")) is None
            assert not held.beat() and held.lost  # the next heartbeat finds out
        holder = backend.impl.holder(KEY, datetime.now(UTC))
        assert holder is not None and holder.token == "successor"  # exit did not release theirs
    assert any("lost the lock" in r.getMessage() and KEY in r.getMessage() for r in caplog.records)


def test_redis_value_holds_the_token_and_holder(redis_url: str, redis_prefix: str) -> None:
    import redis

    backend = RedisLockBackend(redis_url, prefix=redis_prefix)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with hold(backend, KEY, command="cache invalidate", ttl=timedelta(seconds=3), user="dave", host="h9") as held:
            value = json.loads(client.get(redis_prefix + KEY) or "null")
            assert value["token"] == held.token and len(held.token) == 32
            assert (value["user"], value["host"], value["command"]) == ("dave", "h9", "cache invalidate")
            assert value["pid"] == held.pid and value["key"] == KEY
            assert held.info is not None and datetime.fromisoformat(value["expires_at"]) == held.info.expires_at
            assert 0 < client.pttl(redis_prefix + KEY) <= 3000
        assert client.exists(redis_prefix + KEY) == 0
    finally:
        client.close()
        backend.close()


def test_unreachable_redis_is_an_upstream_error_without_the_password() -> None:
    backend = RedisLockBackend("redis://:Sup3rSecretPw@127.0.0.1:1/0", timeout=2)
    with pytest.raises(UpstreamError) as caught:
        backend.holder(KEY, datetime.now(UTC))
    assert caught.value.message.startswith("lock server unreachable at redis://:***@127.0.0.1:1/0")
    assert "Sup3rSecretPw" not in " ".join(caught.value.lines())
