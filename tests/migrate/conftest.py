"""Fixtures for the migration tests: a scratch database on the real PostgreSQL (never skipped)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

ADMIN_DSN = os.environ.get("OPSCTL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def scratch_dsn() -> Iterator[str]:
    """A fresh database for the test module (``opsctl_t_<random>``), dropped WITH (FORCE) after."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = f"opsctl_t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {ADMIN_DSN} ({exc}); start it with "
            "'pg_ctlcluster --skip-systemctl-redirect 15 main start' or set OPSCTL_TEST_PG_ADMIN_URL",
            pytrace=False,
        )
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_conninfo(ADMIN_DSN, dbname=name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def scratch_conn(scratch_dsn: str) -> Iterator[Any]:
    """An autocommit connection to the module's scratch database, emptied for this test: a new
    ``public`` schema and no ``opsctl_migrations``."""
    import psycopg

    with psycopg.connect(scratch_dsn, autocommit=True) as conn:
        conn.execute(
            "DROP SCHEMA IF EXISTS opsctl_migrations CASCADE; DROP SCHEMA public CASCADE; CREATE SCHEMA public"
        )
        yield conn
