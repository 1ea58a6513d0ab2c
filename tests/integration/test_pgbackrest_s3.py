"""The pgBackRest adapter against a real source cluster archiving into an S3 repository (moto behind TLS).

pgBackRest reaches S3 only over HTTPS: the repository is moto's server behind the TLS terminator of
:mod:`tests.fakes.s3_tls`, verified against its throwaway CA (``repo1-storage-ca-file``), never with
verification switched off.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.errors import UpstreamError, UsageError
from opsctl.integrations.pgbackrest import PgBackRest, start_restored, wait_promoted
from tests.fakes.pgbackrest_cluster import STANZA, Source, as_postgres, free_port, init_source, make_dir, stop_cluster
from tests.fakes.s3_tls import S3Repo, s3_repo  # noqa: F401  (fixture)

pytestmark = pytest.mark.postgres

REPO_PATH = "/repo"


def write_s3_config(
    path: Path,
    *,
    base: Path,
    s3: S3Repo,
    stanza: str,
    data: Path,
    port: int,
    ca_file: Path | None,
    extra: str = "",
) -> None:
    """A pgBackRest config whose repo1 is the S3 fake (TLS verified; against ``ca_file`` when given)."""
    ca = f"repo1-storage-ca-file={ca_file}\n" if ca_file is not None else ""
    path.write_text(
        "[global]\n"
        "repo1-type=s3\n"
        f"repo1-path={REPO_PATH}\n"
        f"repo1-s3-endpoint={s3.host}\n"
        f"repo1-storage-port={s3.port}\n"
        "repo1-s3-uri-style=path\n"
        f"repo1-s3-bucket={s3.bucket}\n"
        f"repo1-s3-region={s3.region}\n"
        f"repo1-s3-key={s3.access_key}\n"
        f"repo1-s3-key-secret={s3.secret_key}\n"
        "repo1-storage-verify-tls=y\n"
        f"{ca}"
        "repo1-retention-full=2\n"
        "log-level-console=warn\n"
        "log-level-file=info\n"
        f"log-path={base / 'log'}\n"
        f"lock-path={base / 'lock'}\n"
        f"spool-path={base / 'spool'}\n"
        "start-fast=y\n"
        "compress-type=none\n"
        "process-max=4\n"  # moto answers one request per connection: a TLS handshake for every file
        f"{extra}"
        "\n"
        f"[{stanza}]\n"
        f"pg1-path={data}\n"
        f"pg1-port={port}\n"
        f"pg1-socket-path={base}\n"
    )
    path.chmod(0o600)  # it holds the S3 secret
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def start_s3_source(base: Path, s3: S3Repo, stanza: str = STANZA) -> Source:
    """Like ``start_source``, but archiving into (and backing up to) the S3 repository."""
    data = base / "source"
    for name in ("log", "lock", "spool"):
        make_dir(base / name)
    port = free_port()
    config = base / "pgbackrest.conf"
    source = Source(base, data, port, stanza, config, Path(REPO_PATH), base / "source.log")
    write_s3_config(config, base=base, s3=s3, stanza=stanza, data=data, port=port, ca_file=s3.ca_file)
    return init_source(source)


@pytest.fixture
def base_dir() -> Iterator[Path]:
    """A temp base dir postgres owns (0755), removed at teardown."""
    base = Path(tempfile.mkdtemp(prefix="opsctl-pgbr-s3-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def s3_source(s3_repo: S3Repo, base_dir: Path) -> Iterator[Source]:  # noqa: F811  (the fixture)
    """A source cluster with one full backup in the S3 repository; stopped (with what it tracks) at teardown."""
    source = Source(base_dir, base_dir / "source", 0, STANZA, base_dir / "pgbackrest.conf", Path(REPO_PATH), Path())
    try:
        started = time.monotonic()
        source = start_s3_source(base_dir, s3_repo)
        print(f"\nsource + stanza-create + check + full backup over S3/TLS: {time.monotonic() - started:.2f}s")
        yield source
    finally:
        for data in [*source.tracked, base_dir / "source"]:
            stop_cluster(data)


def _query(dsn: str, sql: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(sql)
        return list(cur.fetchall()) if cur.description else []


def test_point_in_time_restore_from_s3(s3_source: Source, s3_repo: S3Repo) -> None:  # noqa: F811  (the fixture)
    source = s3_source
    # the repository really is the bucket: the backup and the archive are objects under repo1-path
    keys = s3_repo.keys(REPO_PATH.lstrip("/") + "/")
    assert any(k.startswith(f"repo/backup/{source.stanza}/") and k.endswith("backup.manifest") for k in keys)
    assert any(k.startswith(f"repo/archive/{source.stanza}/15-1/") for k in keys)

    source.sql("CREATE TABLE markers (id serial, at timestamptz DEFAULT clock_timestamp(), tag text)")
    for _ in range(3):
        source.sql("INSERT INTO markers (tag) VALUES ('before')")
    time.sleep(1.1)  # pgBackRest keeps a backup's stop time in whole seconds: the target must be past it
    target = source.sql("SELECT now()")[0][0]
    time.sleep(1)
    for _ in range(3):
        source.sql("INSERT INTO markers (tag) VALUES ('after')")
    segment = source.switch_wal()
    assert any(k.startswith(f"repo/archive/{source.stanza}/15-1/{segment[:16]}/{segment}-") for k in s3_repo.keys())

    adapter = PgBackRest(config=str(source.config), stanza=source.stanza, timeout=120)
    backups = adapter.backups()
    assert [b.type for b in backups] == ["full"]
    assert backups[0].stopped_at < target

    restored, port = source.track(source.base / "restored"), free_port()
    log = source.base / "restored.log"
    started = time.monotonic()
    adapter.restore(target_time=target, pg_path=str(restored), port=port)
    restored_in = time.monotonic() - started
    assert "archive_mode = 'off'" in (restored / "postgresql.auto.conf").read_text()
    start_restored(str(restored), port, str(source.base), str(log), timeout=120)
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    wait_promoted(dsn, 120, log=str(log))
    print(f"\nrestore from S3 {restored_in:.2f}s, restore+start+promote {time.monotonic() - started:.2f}s")

    assert _query(dsn, "SELECT pg_is_in_recovery()") == [(False,)]
    assert [row[0] for row in _query(dsn, "SELECT tag FROM markers ORDER BY id")] == ["before"] * 3
    assert source.sql("SELECT tag, count(*) FROM markers GROUP BY tag ORDER BY tag") == [("after", 3), ("before", 3)]


def test_tls_verification_is_really_on(s3_repo: S3Repo, base_dir: Path) -> None:  # noqa: F811  (the fixture)
    for name in ("log", "lock", "spool"):
        make_dir(base_dir / name)
    data = base_dir / "nosource"  # info never reads it

    # with the CA: the TLS connection is made, and the (empty) bucket has no such stanza
    trusting = base_dir / "trusting.conf"
    write_s3_config(trusting, base=base_dir, s3=s3_repo, stanza="nosuch", data=data, port=1, ca_file=s3_repo.ca_file)
    with pytest.raises(UsageError, match="stanza nosuch is not in the pgBackRest repository"):
        PgBackRest(config=str(trusting), stanza="nosuch", timeout=60).info()

    # without it (verify-tls=y): the certificate cannot be verified, and that is one upstream line
    untrusting = base_dir / "untrusting.conf"
    write_s3_config(
        untrusting,
        base=base_dir,
        s3=s3_repo,
        stanza="nosuch",
        data=data,
        port=1,
        ca_file=None,
        extra="io-timeout=3\n",  # pgBackRest retries a failed TLS handshake until io-timeout (60s by default)
    )
    started = time.monotonic()
    with pytest.raises(UpstreamError) as failed:
        PgBackRest(config=str(untrusting), stanza="nosuch", timeout=60).info()
    lines = failed.value.lines()
    assert len(lines) == 1 and "\n" not in lines[0]
    # pgBackRest's info exits 0 and reports the repository's failure as status 99 ("other") of the stanza;
    # the cause is in the repo's own status, which the message carries: the certificate could not be verified
    assert failed.value.message.startswith("pgBackRest stanza nosuch is not usable: other (status 99): repo1: ")
    assert "unable to verify certificate" in failed.value.message
    assert time.monotonic() - started < 30
    raw = as_postgres("pgbackrest", f"--config={untrusting}", "--stanza=nosuch", "--output=json", "info").stdout
    repo_status = json.loads(raw)[0]["repo"][0]["status"]
    assert repo_status["code"] == 99
    assert "unable to verify certificate presented by '127.0.0.1:" in repo_status["message"]
