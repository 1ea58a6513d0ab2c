"""Fixtures for tests against the real PostgreSQL and Redis servers (no mocks).

The servers are expected to run here; when one is unreachable the tests fail with
a message saying how to start it (they are never skipped).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from opsctl.state.base import Store

PG_URL = os.environ.get("OPSCTL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OPSCTL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SRC = Path(__file__).resolve().parents[2] / "src"

try:  # run from a checkout without an editable install too
    import opsctl  # noqa: F401
except ImportError:
    sys.path.insert(0, str(SRC))


@dataclass(frozen=True)
class StoreSpec:
    """Where a test store lives, so that other processes (and reopenings) can reach the same one."""

    backend: str  # "sqlite" or "postgres"
    location: str  # the SQLite file, or the PostgreSQL URL
    schema: str = ""  # PostgreSQL schema

    def open(self, *, upgrade_to: int | None = None) -> Store:
        if self.backend == "sqlite":
            from opsctl.state.sqlite import SQLiteStore

            return SQLiteStore(Path(self.location), upgrade_to=upgrade_to)
        from opsctl.state.postgres import PostgresStore

        return PostgresStore(self.location, self.schema, upgrade_to=upgrade_to)


@pytest.fixture
def child_env() -> dict[str, str]:
    """The environment for a child ``python`` that must import opsctl from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    return env


@pytest.fixture(scope="session")
def pg_url() -> str:
    import psycopg

    try:
        with psycopg.connect(PG_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_URL} ({exc}); start it with "
            "'pg_ctlcluster --skip-systemctl-redirect 15 main start' or set OPSCTL_TEST_PG_URL",
            pytrace=False,
        )
    return PG_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}); start it with "
            "'redis-server --daemonize yes' or set OPSCTL_TEST_REDIS_URL",
            pytrace=False,
        )
    return REDIS_URL


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A unique, not yet existing PostgreSQL schema, dropped after the test."""
    import psycopg
    from psycopg import sql

    name = f"opsctl_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix; every key under it is deleted after the test."""
    import redis

    prefix = f"opsctl-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    """A store location that does not exist yet, for each backend."""
    if request.param == "sqlite":
        return StoreSpec("sqlite", str(tmp_path / "state" / "opsctl.db"))
    return StoreSpec("postgres", request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema"))


@pytest.fixture
def store(store_spec: StoreSpec) -> Iterator[Store]:
    opened = store_spec.open()
    yield opened
    opened.close()
