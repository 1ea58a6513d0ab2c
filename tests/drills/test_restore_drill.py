"""`drill restore` end to end on pgBackRest: a real source cluster archiving into a posix repository,
the drill's markers, a restore of the latest point into a scratch instance, verification, RTO/RPO,
and the scratch torn down — then `drill status` and `drill report` read it back."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.backups.test_restore_pgbackrest_cli import write_config  # the same service: auth, tier 1, pgBackRest
from tests.cli.conftest import OPSCTL, Runner
from tests.fakes.pgbackrest_cluster import Source
from tests.fakes.pgbackrest_cluster import pgbackrest_source as pgbackrest_source

pytestmark = pytest.mark.postgres


@pytest.fixture
def cli(isolated: Path) -> Runner:
    return Runner(dict(os.environ))


def seed(source: Source) -> None:
    source.sql("CREATE TABLE markers (id serial PRIMARY KEY, tag text)")  # config: verify_tables [markers]
    source.sql("INSERT INTO markers (tag) SELECT 'a' || g FROM generate_series(1, 50) g")
    source.switch_wal()


def markers(dsn: str, run_id: str) -> dict[int, object]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT to_regclass('opsctl_drill_markers') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
            return {}
        rows = conn.execute("SELECT seq, written_at FROM opsctl_drill_markers WHERE run_id = %s AND seq > 0",
                            (run_id,)).fetchall()  # fmt: skip
    return {int(seq): at for seq, at in rows}


def test_a_restore_drill_measures_what_the_copy_lost_and_keeps_it_with_keep(
    pgbackrest_source: Source, isolated: Path, cli: Runner
) -> None:
    source = pgbackrest_source
    config = write_config(isolated, source)
    seed(source)
    proc = subprocess.Popen(
        [str(OPSCTL), "--config", str(config), "--yes", "-o", "json", "drill", "restore", "auth", "--markers", "3s",
         "--keep", "--target", "auth-drill-keep"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli.env,
    )  # fmt: skip

    def archive_once_the_markers_are_written() -> None:  # the archiver catching up, as archive_timeout would
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if source.sql("SELECT count(*) FROM opsctl_drill_markers WHERE seq > 0")[0][0] >= 3:
                    source.switch_wal()
                    return
            except psycopg.Error:
                pass
            time.sleep(0.05)

    helper = threading.Thread(target=archive_once_the_markers_are_written, daemon=True)
    helper.start()
    out, err = proc.communicate(timeout=300)
    helper.join(60)
    report = json.loads(out) if out.strip() else {}
    data = source.base / "restores" / "auth-drill-keep"
    source.track(data)
    assert proc.returncode in (0, 1), err
    assert report["type"] == "restore" and report["service"] == "auth"
    steps = [t["step"] for t in report["timeline"]]
    assert steps == ["markers", "failure", "restore", "start", "promote", "verify", "measure"]  # --keep: no teardown
    assert all(t["outcome"] == "done" for t in report["timeline"]), report["timeline"]
    port = int((data / "postgresql.auto.conf").read_text().split("port = ")[-1].split()[0].strip("'"))
    written = markers(source.dsn, report["id"])
    kept = markers(f"postgresql://postgres@127.0.0.1:{port}/postgres", report["id"])
    assert len(written) == 3 and set(kept) <= set(written)
    assert report["markers"]["lost"] == sorted(set(written) - set(kept))
    failure = source.sql("SELECT %s::timestamptz", (report["markers"]["failure_at"],))[0][0]
    if not report["markers"]["lost"]:
        assert report["rpo"]["actual_seconds"] == 0.0
    elif kept:
        assert report["rpo"]["actual_seconds"] == pytest.approx(
            (failure - written[max(kept)]).total_seconds(), abs=0.01
        )
    else:
        assert report["rpo"]["actual_seconds"] >= (failure - written[1]).total_seconds() - 0.01
    assert report["rpo"]["target_seconds"] == 300 and report["rto"]["target_seconds"] == 3600
    assert report["rto"]["met"] and 0 < report["rto"]["actual_seconds"]
    assert (proc.returncode == 0) is (report["result"] != "failed")
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM markers").fetchone()[0] == 50  # type: ignore[index]


def test_a_restore_drill_tears_down_its_scratch_and_counts_for_the_schedule(
    pgbackrest_source: Source, isolated: Path, cli: Runner
) -> None:
    source = pgbackrest_source
    config = write_config(isolated, source)
    seed(source)
    before = cli("--config", str(config), "-o", "json", "drill", "status")
    assert before.code == 1 and before.json() == [{
        "service": "auth", "env": "production", "tier": 1, "drill": "restore", "cadence": "monthly", "last_run": None,
        "last_id": None, "last_result": None, "last_passed": None, "next_due": None, "overdue": True,
    }], before.stdout  # fmt: skip
    r = cli("--config", str(config), "--yes", "-o", "json", "drill", "restore", "auth", "--markers", "0s",
            timeout=300)  # fmt: skip
    assert r.code == 0, r.stderr
    report = r.json()
    assert report["result"] == "passed" and report["markers"] is None
    assert [t["step"] for t in report["timeline"]][-1] == "teardown"
    assert list((source.base / "restores").iterdir()) == []  # the scratch instance is gone
    assert report["rto"]["met"] and report["rpo"]["met"]
    after = cli("--config", str(config), "-o", "json", "drill", "status")
    assert after.code == 0, after.stdout
    row = after.json()[0]
    assert row["last_id"] == report["id"] and row["last_result"] == "passed" and row["overdue"] is False
    assert row["next_due"] is not None and row["next_due"] > report["started_at"]
    md = cli("--config", str(config), "drill", "report", report["id"])
    assert md.code == 0 and "| teardown |" in md.stdout and "**Passed**" in md.stdout, md.stderr
