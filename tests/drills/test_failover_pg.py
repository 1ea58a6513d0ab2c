"""`drill failover` on a real PostgreSQL 15 primary and a streaming standby (pg_basebackup -R, free
ports): the real CLI fails the database over while a writer runs, and the report is checked
against what the servers hold."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cli.conftest import OPSCTL, Runner
from tests.migrate.replica import Pair

pytestmark = pytest.mark.postgres

CONFIG = """\
version: 1
environments: [production]
default_env: production
teams: {{platform: {{}}}}
services:
  - name: billing
    tier: {tier}
    owner: platform
    database:
      dsn: file:{dsn}
      replica_dsn: file:{replica}
{extra}"""


SECRET = "drill-pw-5e1f"  # trust auth ignores it: it is there to be kept out of every output


def write_config(tmp: Path, pair: Pair, *, tier: int = 1, extra: str = "") -> Path:
    (tmp / "dsn").write_text(pair.primary.replace("postgres@", f"postgres:{SECRET}@") + "\n")
    (tmp / "replica").write_text(pair.standby.replace("postgres@", f"postgres:{SECRET}@") + "\n")
    path = tmp / "opsctl.yaml"
    path.write_text(CONFIG.format(tier=tier, dsn=tmp / "dsn", replica=tmp / "replica", extra=extra))
    return path


@pytest.fixture
def cli(isolated: Path) -> Runner:
    return Runner(dict(os.environ))


def sql(dsn: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(query, args or None)
        return cur.fetchall() if cur.description else []


def in_recovery(dsn: str) -> bool:
    return bool(sql(dsn, "SELECT pg_is_in_recovery()")[0][0])


class Writer(threading.Thread):
    """An application writing to the primary until it is fenced (then it counts refusals)."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.stop, self.ok, self.refused = dsn, threading.Event(), 0, 0
        sql(dsn, "CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, at timestamptz DEFAULT now())")

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=2) as conn:
                    while not self.stop.is_set():
                        conn.execute("INSERT INTO orders DEFAULT VALUES")
                        self.ok += 1
                        time.sleep(0.02)
            except psycopg.Error:
                self.refused += 1
                time.sleep(0.05)


def check_rpo_against_the_servers(pair: Pair, report: dict[str, Any]) -> None:
    """The report's lost markers are the ones the old primary has and the new one lacks, and the RPO
    is the failure minus the newest surviving marker (0 when none was lost)."""
    query = "SELECT seq, written_at FROM opsctl_drill_markers WHERE run_id = %s AND seq > 0 ORDER BY seq"
    old = dict(sql(pair.primary, query, report["id"]))
    new = dict(sql(pair.standby, query, report["id"]))
    lost = sorted(set(old) - set(new))
    assert report["markers"]["lost"] == lost and len(old) == report["markers"]["markers_written"]
    assert not set(new) - set(old)
    if not lost:
        assert report["rpo"]["actual_seconds"] == 0.0
    else:
        failure = sql(pair.primary, "SELECT %s::timestamptz", report["markers"]["failure_at"])[0][0]
        expected = (failure - old[max(new)]).total_seconds() if new else None
        assert expected is not None and abs(report["rpo"]["actual_seconds"] - expected) < 0.01
    assert report["rpo"]["met"] is (report["rpo"]["actual_seconds"] <= report["rpo"]["target_seconds"])


def start(cli: Runner, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(OPSCTL), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli.env)  # fmt: skip


def test_a_failover_drill_with_a_writer_running_passes_and_the_new_primary_takes_writes(
    replica_pair: Pair, isolated: Path, cli: Runner
) -> None:
    config = write_config(isolated, replica_pair)
    writer = Writer(replica_pair.primary)
    writer.start()
    try:
        r = cli(
            "--config",
            str(config),
            "--yes",
            "-o",
            "json",
            "drill",
            "failover",
            "billing",
            "--markers",
            "3s",
            timeout=120,
        )
    finally:
        writer.stop.set()
        writer.join(10)
    assert r.code == 0, r.stderr
    report = r.json()
    assert (
        report["type"] == "failover" and report["service"] == "billing" and report["result"] == "passed_with_conditions"
    )
    assert report["rto"]["met"] is True and 0 < report["rto"]["actual_seconds"] < 60
    assert report["markers"]["markers_written"] == 3
    check_rpo_against_the_servers(replica_pair, report)
    steps = [t["step"] for t in report["timeline"]]
    assert steps == ["preflight", "markers", "failure", "stop writes", "promote", "verify write", "measure"]
    assert all(t["outcome"] == "done" and t["started_at"] and t["finished_at"] for t in report["timeline"])
    assert any("no dns block" in o for o in report["observations"])
    # the standby is a primary now and takes writes; the old primary refuses them
    assert not in_recovery(replica_pair.standby)
    sql(replica_pair.standby, "INSERT INTO orders DEFAULT VALUES")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        sql(replica_pair.primary, "INSERT INTO orders DEFAULT VALUES")
    assert writer.ok > 0 and writer.refused > 0  # the application was writing, then was fenced off
    # the same report again, from the state store
    again = cli("--config", str(config), "-o", "json", "drill", "report", report["id"])
    assert again.code == 0 and again.json()["rpo"] == report["rpo"], again.stderr
    md = cli("--config", str(config), "drill", "report", "--last", "--format", "md")
    assert md.code == 0 and "Passed with conditions" in md.stdout and "| stop writes |" in md.stdout, md.stderr
    audit = cli("--config", str(config), "-o", "json", "audit", "--service", "billing")
    shown = cli("--config", str(config), "-o", "json", "runs", "show", report["id"])
    assert [a["outcome"] for a in audit.json()] == ["started", "ok"]
    for text in (r.stdout, r.stderr, again.stdout, md.stdout, audit.stdout, shown.stdout):
        assert SECRET not in text


def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    """A hang guard, not a timing check."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


def markers_on(dsn: str) -> int:
    try:
        return int(sql(dsn, "SELECT count(*) FROM opsctl_drill_markers WHERE seq > 0")[0][0])
    except psycopg.errors.UndefinedTable:
        return 0


def test_markers_written_after_the_standby_was_cut_off_are_the_measured_loss(
    replica_pair: Pair, isolated: Path, cli: Runner
) -> None:
    config = write_config(isolated, replica_pair)
    proc = start(cli, "--config", str(config), "--yes", "-o", "json", "drill", "failover", "billing",
                 "--markers", "6s")  # fmt: skip
    wait_for(lambda: markers_on(replica_pair.standby) >= 2, "two markers on the standby")
    replica_pair.detach_standby()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    report = __import__("json").loads(out)
    assert len(report["markers"]["lost"]) >= 2, report["markers"]  # at least the last two seconds never arrived
    check_rpo_against_the_servers(replica_pair, report)
    assert report["rpo"]["actual_seconds"] >= 2.0
    assert any("markers written before the failure are missing" in o for o in report["observations"])


def test_a_promotion_that_fails_rolls_back_and_the_report_says_failed(
    replica_pair: Pair, isolated: Path, cli: Runner
) -> None:
    config = write_config(isolated, replica_pair)
    proc = start(cli, "--config", str(config), "--yes", "-o", "json", "drill", "failover", "billing",
                 "--markers", "4s")  # fmt: skip
    wait_for(lambda: markers_on(replica_pair.primary) >= 1, "a marker on the primary")
    replica_pair.stop_standby()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    report = __import__("json").loads(out)
    assert report["result"] == "failed" and report["state"] in ("rolled_back", "failed")
    by_step = {t["step"]: t for t in report["timeline"]}
    assert by_step["promote"]["outcome"].startswith("failed")
    assert by_step["stop writes"]["outcome"] == "done, rolled back"
    assert by_step["rollback: stop writes"]["outcome"] == "done"
    assert by_step["verify write"]["outcome"] == "not run"
    assert report["rto"]["met"] is False and any("did not complete" in o for o in report["observations"])
    sql(replica_pair.primary, "INSERT INTO opsctl_drill_markers (run_id, seq) VALUES ('after', 1)")  # writable again
    assert "promote" in err


def test_a_preflight_refusal_changes_nothing_and_exits_3(replica_pair: Pair, isolated: Path, cli: Runner) -> None:
    config = write_config(isolated, replica_pair)
    replica_pair.detach_standby()
    wait_for(lambda: not sql(replica_pair.standby, "SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'"),
             "the standby stops streaming")  # fmt: skip
    r = cli("--config", str(config), "--yes", "drill", "failover", "billing", timeout=60)
    assert r.code == 3, r.stderr
    assert "preflight" in r.stderr and "not streaming" in r.stderr
    assert markers_on(replica_pair.primary) == 0 and in_recovery(replica_pair.standby)
    audit = cli("--config", str(config), "-o", "json", "audit", "--service", "billing")
    assert [a["outcome"] for a in audit.json()] == ["refused"], audit.stdout


def test_dry_run_prints_the_plan_and_changes_nothing(replica_pair: Pair, isolated: Path, cli: Runner) -> None:
    config = write_config(isolated, replica_pair)
    r = cli("--config", str(config), "--dry-run", "-o", "json", "drill", "failover", "billing")
    assert r.code == 0, r.stderr
    plan = r.json()
    assert [s["name"] for s in plan] == ["preflight", "markers", "failure", "stop writes", "promote", "verify write",
                                         "measure"]  # fmt: skip
    assert next(s for s in plan if s["name"] == "stop writes")["undo"] == "make the old primary writable again"
    assert markers_on(replica_pair.primary) == 0 and in_recovery(replica_pair.standby)


def test_interrupted_by_ctrl_c_the_drill_stops_and_reports(replica_pair: Pair, isolated: Path, cli: Runner) -> None:
    import signal

    config = write_config(isolated, replica_pair)
    proc = start(cli, "--config", str(config), "--yes", "-o", "json", "drill", "failover", "billing",
                 "--markers", "60s")  # fmt: skip
    wait_for(lambda: markers_on(replica_pair.primary) >= 2, "two markers on the primary")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    report = __import__("json").loads(out)
    assert report["result"] == "failed" and report["state"] == "interrupted"
    assert {t["step"]: t["outcome"] for t in report["timeline"]}["promote"] == "not run"
    assert in_recovery(replica_pair.standby)  # nothing was failed over
    sql(replica_pair.primary, "INSERT INTO opsctl_drill_markers (run_id, seq) VALUES ('after', 1)")


def test_a_tier_0_service_is_told_plainly_that_async_replication_cannot_meet_rpo_0(
    replica_pair: Pair, isolated: Path, cli: Runner
) -> None:
    config = write_config(isolated, replica_pair, tier=0)
    r = cli("--config", str(config), "--yes", "-o", "json", "drill", "failover", "billing", "--markers", "2s",
            timeout=120)  # fmt: skip
    report = r.json()
    assert any("asynchronous replication cannot meet" in o for o in report["observations"])
    assert any("synchronous_standby_names" in f for f in report["follow_ups"])
    assert report["rpo"]["target_seconds"] == 0 and report["rto"]["target_seconds"] == 900
    if report["rpo"]["actual_seconds"] > 0:
        assert report["result"] == "failed" and r.code == 1
    else:
        assert report["result"] == "passed_with_conditions" and r.code == 0


def test_failback_rebuilds_the_old_primary_as_a_replica_and_returns(
    replica_pair: Pair, isolated: Path, cli: Runner
) -> None:
    config = write_config(isolated, replica_pair)
    sql(replica_pair.primary, "CREATE TABLE orders (id serial PRIMARY KEY)")
    r = cli("--config", str(config), "--yes", "-o", "json", "drill", "failover", "billing", "--markers", "2s",
            "--failback", timeout=300)  # fmt: skip
    assert r.code == 0, r.stderr
    report = r.json()
    steps = [t["step"] for t in report["timeline"]]
    assert steps[-3:] == ["rebuild old primary", "switch back", "rebuild replica"]
    assert all(t["outcome"] == "done" for t in report["timeline"]), report["timeline"]
    # back where it started: the original primary takes writes, the other streams from it again
    assert not in_recovery(replica_pair.primary) and in_recovery(replica_pair.standby)
    sql(replica_pair.primary, "INSERT INTO orders DEFAULT VALUES")
    wait_for(
        lambda: sql(replica_pair.standby, "SELECT count(*) FROM orders")[0][0] == 1, "the write reaches the replica"
    )
    streaming = sql(replica_pair.primary, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
    assert streaming[0][0] == 1
    # the write proven on the new primary during the drill came back with the failback
    assert sql(replica_pair.primary, "SELECT count(*) FROM opsctl_drill_markers WHERE run_id = %s AND seq = 0",
               report["id"])[0][0] == 1  # fmt: skip
    assert [p.name for p in replica_pair.base.iterdir() if ".opsctl-" in p.name and p.is_dir()] == []


def writable(dsn: str) -> bool:
    try:
        sql(dsn, "INSERT INTO opsctl_drill_markers (run_id, seq) VALUES (%s, 1)", f"probe-{time.monotonic_ns()}")
        return True
    except psycopg.Error:
        return False


def test_sigterm_during_the_failback_leaves_exactly_one_writable_primary(
    replica_pair: Pair, isolated: Path, cli: Runner
) -> None:
    import signal

    config = write_config(isolated, replica_pair)
    proc = start(cli, "--config", str(config), "--yes", "-o", "json", "drill", "failover", "billing", "--markers", "1s",
                 "--failback")  # fmt: skip
    wait_for(lambda: any(p.name.startswith("primary.opsctl-") for p in replica_pair.base.iterdir()),
             "the failback sets the old primary's directory aside")  # fmt: skip
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    report = __import__("json").loads(out)
    assert report["state"] == "interrupted" and report["result"] == "failed"
    assert report["rto"]["met"] and report["markers"] is not None  # the failover itself was measured
    by_step = {t["step"]: t["outcome"] for t in report["timeline"]}
    assert by_step["promote"] == "done" and by_step["stop writes"] == "done"  # the failover was not turned back
    assert any("the failover was complete when the drill stopped" in o for o in report["observations"])
    assert not any(t["step"] in ("rollback: promote", "rollback: stop writes") for t in report["timeline"])
    alive = [dsn for dsn in (replica_pair.primary, replica_pair.standby) if writable(dsn)]
    assert len(alive) == 1, alive  # never two writable primaries, never none
