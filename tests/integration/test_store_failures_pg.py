"""The PostgreSQL store on a full disk, out of resources, losing its connection, and given a bad URL.

All against the real server: a trigger makes the server write to ``/dev/full`` (the kernel's
ENOSPC, which PostgreSQL reports as SQLSTATE 53100 disk_full) before each change to opsctl's
tables; ``temp_file_limit`` makes a sort fail with 53400; ``pg_terminate_backend`` drops the
connection of a store that has a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from opsctl.errors import ExitCode, UpstreamError, UsageError
from opsctl.state.base import Record
from opsctl.state.postgres import PostgresStore
from opsctl.state.schema import OWN_TABLES
from tests.integration.test_store_failures import WRITES, seed, unchanged, write_paths


def admin(url: str, *statements: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cursor = conn.execute(statement, params or None)
            rows = cursor.fetchall() if cursor.description else []
        return rows


def fill_the_disk(url: str, schema: str) -> None:
    admin(
        url,
        f"""CREATE FUNCTION "{schema}".full_disk() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN EXECUTE 'COPY (SELECT 1) TO ''/dev/full'''; RETURN COALESCE(NEW, OLD); END $$""",
        *(
            f'CREATE TRIGGER full_disk BEFORE INSERT OR UPDATE OR DELETE ON "{schema}".{table}'
            f' FOR EACH ROW EXECUTE FUNCTION "{schema}".full_disk()'
            for table in sorted(OWN_TABLES)
        ),
    )


def free_the_disk(url: str, schema: str) -> None:
    admin(url, f'DROP FUNCTION "{schema}".full_disk() CASCADE')


def test_every_write_on_a_full_server_disk_is_a_disk_full_error(pg_url: str, pg_schema: str) -> None:
    store = PostgresStore(pg_url, pg_schema)
    try:
        seed(store)
        fill_the_disk(pg_url, pg_schema)
        outcomes: dict[str, list[Any]] = {}
        for name, write in write_paths(store).items():
            with pytest.raises(UpstreamError) as caught:
                write()
            outcomes[name] = [caught.value.exit_code, caught.value.message.split(": ", 1)[0], len(caught.value.lines())]
            assert "No space left on device" in caught.value.message
            assert (
                caught.value.hint is not None
                and "free space on the PostgreSQL server's data volume" in caught.value.hint
            )
        assert outcomes == {name: [ExitCode.UPSTREAM, f"disk full at {pg_url}", 1] for name in WRITES}
        assert len(store.list_audit()) == 1  # reads go on

        free_the_disk(pg_url, pg_schema)
        unchanged(lambda q: admin(pg_url, f'SET search_path TO "{pg_schema}"', q), 1)  # every failed write rolled back
        store.add_audit(store.list_audit()[0])  # the same session takes writes again
        assert len(store.list_audit()) == 2
    finally:
        store.close()


def test_exhausted_server_resources_are_an_upstream_error_not_unreachable(pg_url: str, pg_schema: str) -> None:
    store = PostgresStore(pg_url, pg_schema)
    try:
        for n in range(300):  # about 300 kB to sort: more than work_mem and temp_file_limit below
            store.create_record(Record("incident", f"INC-{n}", "api", "open", {"pad": "x" * 1000}))
    finally:
        store.close()
    limited = f"{pg_url}?options=-c%20work_mem%3D64kB%20-c%20temp_file_limit%3D64kB"
    store = PostgresStore(limited, pg_schema)
    try:
        with pytest.raises(UpstreamError) as caught:
            store.find_records("incident")  # ORDER BY created_at: a sort that spills to temporary files
        error = caught.value
        assert error.exit_code == ExitCode.UPSTREAM
        assert error.message == (
            f"state store at {limited} is out of resources:"
            " temporary file size exceeds temp_file_limit (64kB) (SQLSTATE 53400)"
        )
        assert store.find_records("incident", limit=5)  # a query that fits still works
    finally:
        store.close()


@pytest.fixture
def own_database(pg_url: str) -> Iterator[str]:
    """The URL of a fresh database only the test's store connects to (so its backends can be killed)."""
    name = f"opsctl_drop_{uuid.uuid4().hex[:10]}"
    admin(pg_url, f'CREATE DATABASE "{name}"')
    yield pg_url.rsplit("/", 1)[0] + f"/{name}"
    admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_dropped_connection_is_one_upstream_line_and_the_next_call_reconnects(own_database: str) -> None:
    store = PostgresStore(own_database)
    try:
        seed(store)
        name = own_database.rsplit("/", 1)[1]
        killed = admin(
            own_database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            params=(name,),
        )
        assert killed == [(True,)]
        with pytest.raises(UpstreamError) as caught:
            store.list_audit()
        error = caught.value
        assert error.exit_code == ExitCode.UPSTREAM and len(error.lines()) == 1
        assert error.message.startswith(f"state store unreachable at {own_database}: ")
        assert "check that PostgreSQL is running" in (error.hint or "")
        assert len(store.list_audit()) == 1  # the next call opens a new session
    finally:
        store.close()


BAD_URLS = {
    "unclosed IPv6 bracket": ("postgresql://ops:S3cretPw@[::1/state", "Invalid IPv6 URL"),
    "port not a number": (
        "postgresql://ops:S3cretPw@127.0.0.1:notaport/state",
        'invalid integer value "notaport" for connection option "port"',
    ),
    "port out of range": ("postgresql://ops:S3cretPw@127.0.0.1:99999/state", 'invalid port number: "99999"'),
    "unknown parameter": ("postgresql://ops:S3cretPw@127.0.0.1/state?bogus=1", 'invalid URI query parameter: "bogus"'),
    "bad sslmode": ("postgresql://ops:S3cretPw@127.0.0.1/state?sslmode=maybe", 'invalid sslmode value: "maybe"'),
    "bad escape in the password": (
        "postgresql://ops:S3cretPw%zz@127.0.0.1/state",
        'invalid percent-encoded token: "***"',
    ),
}


@pytest.mark.parametrize("case", BAD_URLS)
def test_a_malformed_url_is_a_usage_error_without_the_password(case: str) -> None:
    url, reason = BAD_URLS[case]
    with pytest.raises(UsageError) as caught:
        PostgresStore(url, connect_timeout=2)
    error = caught.value
    assert error.exit_code == ExitCode.USAGE and len(error.lines()) == 1
    assert error.message.startswith("invalid state store URL postgresql://ops:***@")
    assert error.message.endswith(f": {reason}")
    assert error.hint is not None and "fix state.url in the config" in error.hint
    assert "S3cretPw" not in error.lines()[0]
