"""The pgBackRest adapter against a real source cluster archiving into a real posix repository."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from opsctl.errors import RefusedError, UpstreamError, UsageError
from opsctl.integrations.pgbackrest import PgBackRest, recovery_result, start_restored, wait_promoted
from tests.fakes.pgbackrest_cluster import (
    Source,
    as_postgres,
    free_port,
    make_dir,
    pgbackrest_source,  # noqa: F401  (fixture)
    write_config,
)

pytestmark = pytest.mark.postgres


def _adapter(source: Source) -> PgBackRest:
    return PgBackRest(config=str(source.config), stanza=source.stanza, timeout=120)


def _query(dsn: str, sql: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(sql)
        return list(cur.fetchall()) if cur.description else []


def test_point_in_time_restore_round_trip(pgbackrest_source: Source) -> None:  # noqa: F811  (the fixture)
    source = pgbackrest_source
    source.sql("CREATE TABLE markers (id serial, at timestamptz DEFAULT clock_timestamp(), tag text)")
    for _ in range(3):
        source.sql("INSERT INTO markers (tag) VALUES ('before')")
    time.sleep(1)
    target = source.sql("SELECT now()")[0][0]
    time.sleep(1)
    for _ in range(3):
        source.sql("INSERT INTO markers (tag) VALUES ('after')")
    source.switch_wal()
    last_before = source.sql("SELECT max(at) FROM markers WHERE tag = 'before'")[0][0]
    archived_until = source.sql("SELECT last_archived_time FROM pg_stat_archiver")[0][0]
    source_started = source.sql("SELECT pg_postmaster_start_time()")[0][0]

    adapter = _adapter(source)
    window = adapter.window(archived_until=archived_until)
    assert window.earliest is not None and window.latest is not None
    assert window.earliest <= target <= window.latest
    assert adapter.window().latest is None

    restored, port = source.track(source.base / "restored"), free_port()
    log = source.base / "restored.log"
    started = time.monotonic()
    adapter.restore(target_time=target, pg_path=str(restored), port=port)
    restored_in = time.monotonic() - started
    auto_conf = (restored / "postgresql.auto.conf").read_text()
    assert "archive_mode = 'off'" in auto_conf and f"port = '{port}'" in auto_conf
    archive_before = source.archived_segments()

    start_restored(str(restored), port, str(source.base), str(log), timeout=120)
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    wait_promoted(dsn, 120, log=str(log))
    promoted_in = time.monotonic() - started
    print(f"\nrestore {restored_in:.2f}s, restore+start+promote {promoted_in:.2f}s")

    assert _query(dsn, "SELECT pg_is_in_recovery()") == [(False,)]
    tags = [row[0] for row in _query(dsn, "SELECT tag FROM markers ORDER BY id")]
    assert tags == ["before"] * 3

    # the source still runs, never restarted, and has every row
    assert source.sql("SELECT pg_postmaster_start_time()")[0][0] == source_started
    assert source.sql("SELECT tag, count(*) FROM markers GROUP BY tag ORDER BY tag") == [("after", 3), ("before", 3)]

    result = recovery_result(log.read_text())
    print(result)
    assert result["last_transaction"] is not None and result["stopped_before"] is not None
    assert last_before <= result["last_transaction"] <= target < result["stopped_before"]

    # the promoted copy archives nothing into the production repository. (Were archiving on, its inherited
    # archive_command would fail here with pgBackRest's "[032] working directory ... is not the same as option
    # pg1-path": the source's config names the source's data directory. The archiver's counters catch that;
    # on a host whose config names the restored directory the push would succeed, hence archive_mode = off.)
    assert _query(dsn, "SHOW archive_mode") == [("off",)]
    _query(dsn, "CREATE TABLE restored_writes AS SELECT g FROM generate_series(1, 10000) g")
    _query(dsn, "SELECT pg_switch_wal()")
    _query(dsn, "CHECKPOINT")
    time.sleep(1.5)
    assert _query(dsn, "SELECT archived_count, failed_count FROM pg_stat_archiver") == [(0, 0)]
    after = source.archived_segments()
    assert after == archive_before
    assert not [name for name in after if "/00000002" in name or name.startswith("00000002")]
    assert "archive command failed" not in log.read_text()


def test_backups_are_listed_oldest_first_with_their_fields(pgbackrest_source: Source) -> None:  # noqa: F811  (the fixture)
    source = pgbackrest_source
    source.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
    source.backup("incr")
    backups = _adapter(source).backups()
    assert [b.type for b in backups] == ["full", "incr"]
    full, incr = backups
    assert full.label.endswith("F") and incr.label.startswith(full.label + "_") and incr.label.endswith("I")
    for backup in backups:
        assert backup.started_at.tzinfo is not None and backup.started_at.utcoffset() == timedelta(0)
        assert backup.stopped_at >= backup.started_at
        assert abs(backup.stopped_at - datetime.now(UTC)) < timedelta(minutes=5)
        assert backup.size > 0 and backup.repo_size is not None and backup.repo_size > 0
        assert len(backup.wal_start) == 24 and backup.wal_stop >= backup.wal_start
    assert full.stopped_at <= incr.started_at

    # before the oldest backup's end nothing is restorable: refused, never "the latest backup instead"
    new = source.base / "too-early"
    with pytest.raises(RefusedError, match="before the earliest restorable time"):
        _adapter(source).restore(target_time=full.started_at - timedelta(hours=1), pg_path=str(new), port=free_port())
    assert not new.exists()
    # pgBackRest's own refusal, past our check (a target between the backup's start and stop)
    with pytest.raises(RefusedError, match=r"ERROR: \[075\]: unable to find backup set with stop time less than"):
        _adapter(source).restore(target_time=full.stopped_at, pg_path=str(new), port=free_port())
    assert not new.exists()
    assert _adapter(source).info()["name"] == source.stanza


def test_restore_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.mkdir()
    (target / "PG_VERSION").write_text("15\n")
    adapter = PgBackRest(config="/nonexistent/pgbackrest.conf", stanza="opsctl")
    with pytest.raises(RefusedError, match="not empty"):
        adapter.restore(target_time=datetime.now(UTC), pg_path=str(target), port=free_port())
    assert [p.name for p in target.iterdir()] == ["PG_VERSION"]
    with pytest.raises(UsageError, match="time zone"):
        adapter.restore(target_time=datetime.now(), pg_path=str(tmp_path / "new"), port=free_port())
    with pytest.raises(UsageError, match="--delta"):
        adapter.restore(target_time=datetime.now(UTC), pg_path=str(tmp_path / "new"), port=1, extra=["--delta"])
    assert not (tmp_path / "new").exists()


def test_a_stanza_without_backups(pgbackrest_source: Source) -> None:  # noqa: F811  (the fixture)
    source = pgbackrest_source
    base = source.base
    repo = make_dir(base / "empty-repo")
    config = base / "empty.conf"
    write_config(config, base=base, repo=repo, stanza="empty", data=source.data, port=source.port)
    as_postgres("pgbackrest", f"--config={config}", "--stanza=empty", "stanza-create")
    adapter = PgBackRest(config=str(config), stanza="empty", timeout=60)
    with pytest.raises(RefusedError, match=r"^no backup of stanza empty$"):
        adapter.info()
    with pytest.raises(RefusedError, match="no backup of stanza empty"):
        adapter.window()
    new = base / "never"
    with pytest.raises(RefusedError, match=r"^no backup of stanza empty$"):
        adapter.restore(target_time=datetime.now(UTC), pg_path=str(new), port=free_port())
    assert not new.exists()

    missing = PgBackRest(config=str(config), stanza="nosuch", timeout=60)
    with pytest.raises(UsageError, match="stanza nosuch is not in the pgBackRest repository"):
        missing.info()


def test_info_with_a_wrong_config_is_one_upstream_line() -> None:
    adapter = PgBackRest(config="/nonexistent/pgbackrest.conf", stanza="opsctl", timeout=30)
    with pytest.raises(UpstreamError) as failed:
        adapter.info()
    print(failed.value.lines())
    assert len(failed.value.lines()) == 1 and "\n" not in failed.value.lines()[0]
    assert failed.value.message.startswith("pgbackrest info (stanza opsctl): ERROR: [")
    assert "/nonexistent/pgbackrest.conf" in failed.value.message


def test_recovery_result_reads_the_server_log_lines() -> None:
    log = (
        "2026-11-27 19:33:20.944 UTC [28023] LOG:  recovery stopping before commit of transaction 728, "
        "time 2026-11-27 19:33:08.528897+00\n"
        "2026-11-27 19:33:20.944 UTC [28023] LOG:  last completed transaction was at log time "
        "2026-11-27 15:03:06.511585-04:30\n"
    )
    assert recovery_result(log) == {
        "stopped_before": datetime(2026, 11, 27, 19, 33, 8, 528897, tzinfo=UTC),
        "last_transaction": datetime(2026, 11, 27, 15, 3, 6, 511585, tzinfo=timezone(-timedelta(hours=4, minutes=30))),
    }
    assert recovery_result("nothing here") == {"stopped_before": None, "last_transaction": None}


def test_a_tablespace_is_restored_next_to_the_copy_not_over_the_source(pgbackrest_source: Source) -> None:  # noqa: F811  (the fixture)
    source = pgbackrest_source
    space = make_dir(source.base / "space")
    source.sql(f"CREATE TABLESPACE extra LOCATION '{space}'")
    source.sql("CREATE TABLE spaced TABLESPACE extra AS SELECT g FROM generate_series(1, 100) g")
    source.backup("full")
    time.sleep(1.1)  # pgBackRest keeps a backup's stop time in whole seconds: the target must be past it
    target = source.sql("SELECT now()")[0][0]
    time.sleep(0.2)
    source.sql("INSERT INTO spaced VALUES (-1)")  # recovery must see a commit past the target to stop there
    source.switch_wal()
    before = sorted((str(p), p.stat().st_mtime_ns) for p in space.rglob("*"))

    restored, port = source.track(source.base / "copy"), free_port()
    _adapter(source).restore(target_time=target, pg_path=str(restored), port=port)
    links = [Path(os.readlink(link)) for link in (restored / "pg_tblspc").iterdir()]
    assert links and all(link.is_relative_to(source.base / "copy.tablespaces") for link in links)
    start_restored(str(restored), port, str(source.base), str(source.base / "copy.log"), timeout=120)
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    wait_promoted(dsn, 120, log=str(source.base / "copy.log"))
    assert _query(dsn, "SELECT count(*) FROM spaced") == [(100,)]
    _query(dsn, "INSERT INTO spaced SELECT g FROM generate_series(1, 1000) g")
    _query(dsn, "CHECKPOINT")
    assert sorted((str(p), p.stat().st_mtime_ns) for p in space.rglob("*")) == before
    assert source.sql("SELECT count(*) FROM spaced") == [(101,)]


def test_a_tablespace_created_after_the_backup_is_refused_on_the_source_host(pgbackrest_source: Source) -> None:  # noqa: F811  (the fixture)
    source = pgbackrest_source
    time.sleep(1.1)  # past the fixture's backup, in whole seconds
    space = make_dir(source.base / "space")
    source.sql(f"CREATE TABLESPACE extra LOCATION '{space}'")
    source.sql("CREATE TABLE spaced TABLESPACE extra AS SELECT g FROM generate_series(1, 100) g")
    time.sleep(0.2)
    target = source.sql("SELECT now()")[0][0]
    time.sleep(0.2)
    source.sql("INSERT INTO spaced VALUES (-1)")
    source.switch_wal()
    before = sorted((str(p), p.stat().st_mtime_ns) for p in space.rglob("*"))

    restored = source.track(source.base / "copy")
    with pytest.raises(RefusedError, match=r"lacks tablespace\(s\) \d+ of the source .* on this host"):
        _adapter(source).restore(target_time=target, pg_path=str(restored), port=free_port())
    assert sorted((str(p), p.stat().st_mtime_ns) for p in space.rglob("*")) == before
