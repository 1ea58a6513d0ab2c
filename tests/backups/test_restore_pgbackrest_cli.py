"""`db restore --pitr` and `db backups` on pgBackRest through the real CLI: a real source cluster
archiving into a posix repository, restored as of a captured time on a new port."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.cli.conftest import Runner
from tests.fakes.pgbackrest_cluster import Source, make_dir
from tests.fakes.pgbackrest_cluster import pgbackrest_source as pgbackrest_source

pytestmark = pytest.mark.postgres

CONFIG = """\
version: 1
environments: [production]
default_env: production
teams: {{platform: {{}}}}
services:
  - name: auth
    tier: 1
    owner: platform
    database:
      dsn: file:{dsn}
      backup: {{provider: pgbackrest, stanza: {stanza}, config: {config}}}
      restore_root: {root}
      verify_tables: [markers]
"""


@pytest.fixture
def cli(isolated: Path) -> Runner:
    return Runner(dict(os.environ))


def write_config(tmp: Path, source: Source) -> Path:
    (tmp / "dsn").write_text(source.dsn + "\n")
    root = make_dir(source.base / "restores")
    path = tmp / "opsctl.yaml"
    path.write_text(CONFIG.format(dsn=tmp / "dsn", stanza=source.stanza, config=source.config, root=root))
    return path


def seed(source: Source) -> datetime:
    """Rows before and after a captured time T, archived; T."""
    source.sql("CREATE TABLE markers (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp(), tag text)")
    for n in range(5):
        source.sql("INSERT INTO markers (tag) VALUES (%s)", (f"before-{n}",))
    time.sleep(1.0)
    at = source.sql("SELECT now()")[0][0].astimezone(UTC)
    time.sleep(1.0)
    for n in range(3):
        source.sql("INSERT INTO markers (tag) VALUES (%s)", (f"after-{n}",))
    source.switch_wal()
    return at


def rows(port: int) -> list[str]:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT tag FROM markers ORDER BY id").fetchall()]


def test_pitr_round_trip(pgbackrest_source: Source, isolated: Path, cli: Runner) -> None:
    source = pgbackrest_source
    config = write_config(isolated, source)
    at = seed(source)
    started_source = source.sql("SELECT pg_postmaster_start_time()")[0][0]
    r = cli("--config", str(config), "--yes", "-o", "json", "db", "restore", "auth", "--pitr", "--to", at.isoformat(),
            "--target", "auth-pitr-1", "--verify-sql", "SELECT count(*) = 5 FROM markers", "--mfa-code", "123456")  # fmt: skip
    report = json.loads(r.stdout) if r.stdout else {}
    if report:
        source.track(Path(report["verification"]["data_directory"]))
    assert r.code == 0, r.stderr
    port = report["verification"]["port"]
    assert rows(port) == [f"before-{n}" for n in range(5)]
    assert len(rows(source.port)) == 8 and source.sql("SELECT pg_postmaster_start_time()")[0][0] == started_source
    recovered = datetime.fromisoformat(report["recovered_to"])
    assert recovered <= at
    last_before = source.sql("SELECT max(at) FROM markers WHERE tag LIKE 'before-%%'")[0][0]
    assert recovered >= last_before - __import__("datetime").timedelta(seconds=1)
    assert report["requested_time"].startswith(at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert report["data_loss_seconds"] == pytest.approx(
        (at - recovered).total_seconds(), abs=1.0
    )  # output: whole seconds
    assert 0 <= report["data_loss_seconds"] < 3
    assert report["rpo"] == {"target_seconds": 300.0, "actual_seconds": report["data_loss_seconds"], "met": True}
    assert report["rto"]["target_seconds"] == 3600.0 and report["rto"]["met"] is True
    assert report["elapsed_seconds"] > 0
    assert report["verification"]["ok"] and report["verification"]["tables"] == {"markers": 5}
    assert report["dsn"] == f"postgresql://postgres@127.0.0.1:{port}/postgres"
    assert report["mfa"] == "code-given-unverified"  # no AWS account configured to check it with
    kept = cli("--config", str(config), "-o", "json", "runs", "show", report["run_id"]).json()
    assert kept["state"] == "succeeded" and kept["data"]["verification"]["tables"] == {"markers": 5}
    again = cli("--config", str(config), "--yes", "db", "restore", "auth", "--pitr", "--to", at.isoformat(),
                "--target", "auth-pitr-1", "--mfa-code", "123456")  # fmt: skip
    assert again.code == 3 and "already exists" in again.stderr


def test_refusals_change_nothing(pgbackrest_source: Source, isolated: Path, cli: Runner) -> None:
    source = pgbackrest_source
    config = write_config(isolated, source)
    seed(source)
    base = ("--config", str(config), "--yes", "db", "restore", "auth", "--pitr", "--mfa-code", "123456")
    before = cli(*base, "--to", "2020-01-01T00:00:00Z")
    assert before.code == 3 and "before the oldest backup" in before.stderr and "restorable window" in before.stderr
    future = cli(*base, "--to", "2999-01-01T00:00:00Z")
    assert future.code == 3 and "in the future" in future.stderr
    naive = cli(*base, "--to", "2026-11-27 02:41")
    assert naive.code == 2
    dry = cli("--config", str(config), "--dry-run", "db", "restore", "auth", "--pitr", "--to", "latest")
    assert dry.code == 0 and "pgbackrest restore" in dry.stdout
    assert list((source.base / "restores").iterdir()) == []
    no_pitr = cli("--config", str(config), "db", "restore", "auth", "--to", "latest")
    assert no_pitr.code == 2


def test_no_confirmation_without_a_terminal_for_tier_1_production(
    pgbackrest_source: Source,
    isolated: Path,
    cli: Runner,
) -> None:
    config = write_config(isolated, pgbackrest_source)
    r = cli("--config", str(config), "db", "restore", "auth", "--pitr", "--to", "latest", "--mfa-code", "123456")
    assert r.code == 3 and "confirmation" in r.stderr
    no_code = cli("--config", str(config), "--yes", "db", "restore", "auth", "--pitr", "--to", "latest")
    assert no_code.code == 3 and "needs MFA" in no_code.stderr and "--mfa-code" in no_code.stderr
    bad = cli(
        "--config", str(config), "--yes", "db", "restore", "auth", "--pitr", "--to", "latest", "--mfa-code", "12ab"
    )
    assert bad.code == 2
    audit = cli("--config", str(config), "audit", "-o", "json").json()
    assert any(a["command"] == "db restore" and a["outcome"] == "refused" for a in audit)
    assert list((pgbackrest_source.base / "restores").iterdir()) == []


def test_backups_report_on_pgbackrest(pgbackrest_source: Source, isolated: Path, cli: Runner) -> None:
    config = write_config(isolated, pgbackrest_source)
    pgbackrest_source.sql("CREATE TABLE activity (x int); INSERT INTO activity VALUES (1)")
    pgbackrest_source.switch_wal()
    r = cli("--config", str(config), "-o", "json", "db", "backups", "auth")
    assert r.code == 1, r.stderr
    data = r.json()
    assert data["provider"] == "pgbackrest" and data["backups"][0]["type"] == "full"
    assert data["backups"][0]["size"] > 0 and data["window"]["earliest"] and data["window"]["latest"]
    status = {p["rule"]: p["status"] for p in data["policy"]}
    assert status["pitr covers 7 days"] == "VIOLATION"  # a minutes-old stanza
    assert status["encrypted copy in another region"] == "VIOLATION"
    assert "repo1 (posix" in {p["rule"]: p["evidence"] for p in data["policy"]}["encrypted copy in another region"]


def test_sigterm_during_the_restore_stops_and_removes_the_new_instance(
    pgbackrest_source: Source,
    isolated: Path,
) -> None:
    import signal
    import subprocess

    from tests.cli.conftest import OPSCTL
    from tests.deploy.conftest import _reset_signals

    source = pgbackrest_source
    config = write_config(isolated, source)
    source.sql("CREATE TABLE bulk AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 300000) g")
    source.backup("full")
    source.switch_wal()
    root = source.base / "restores"
    proc = subprocess.Popen(
        [str(OPSCTL), "--config", str(config), "--yes", "db", "restore", "auth", "--pitr", "--to", "latest",
         "--target", "auth-stopped", "--mfa-code", "123456"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_reset_signals,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (root / "auth-stopped").exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    source.track(root / "auth-stopped")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "removed the partial restore" in err
    assert not (root / "auth-stopped").exists()
    assert len(source.sql("SELECT count(*) FROM bulk")) == 1  # the source still answers


def test_a_target_inside_the_source_is_refused(pgbackrest_source: Source, isolated: Path, cli: Runner) -> None:
    source = pgbackrest_source
    config = write_config(isolated, source)
    config.write_text(config.read_text().replace(f"restore_root: {source.base / 'restores'}",
                                                 f"restore_root: {source.data}"))  # fmt: skip
    r = cli("--config", str(config), "--yes", "db", "restore", "auth", "--pitr", "--to", "latest",
            "--mfa-code", "123456")  # fmt: skip
    assert r.code == 3 and "source's data directory" in r.stderr
    assert not (source.data / "auth-pitr").exists() and len(source.sql("SELECT 1")) == 1
