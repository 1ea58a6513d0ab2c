"""opsctl's failover drill against the bare failover it performs, on the same kind of pair, same run.

    .venv/bin/python bench/drill.py [--runs 5]

Each run makes a fresh PostgreSQL primary and streaming standby (initdb + pg_basebackup -R, free
ports) and fails it over, alternately:
- raw: what a DBA types — fence the primary (ALTER DATABASE … default_transaction_read_only,
  sessions ended), ``pg_promote()`` on the standby, lift the replicated fence, one INSERT on a new
  connection; the RTO is the failure moment → that INSERT committed;
- opsctl: ``opsctl drill failover SERVICE --markers 1s --yes -o json``; its report's RTO is measured
  the same way (failure → first write accepted), plus the command's wall time (start-up, preflight,
  markers, run record, audit, report).
Medians over ``--runs`` each; the RTO ratio opsctl/raw (goal: the drill adds at most 0.5 s to the
RTO it measures, so that what it reports is the database's RTO, not opsctl's).  Writes
bench/results/drill.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from tests.migrate.replica import Pair, make_pair  # noqa: E402  (after the path set-up)

CONFIG = """\
version: 1
environments: [staging]
default_env: staging
teams: {{platform: {{}}}}
policy: {{confirm: []}}
services:
  - name: bench
    tier: 1
    owner: platform
    database: {{dsn: "file:{dsn}", replica_dsn: "file:{replica}"}}
"""


def raw(pair: Pair) -> float:
    with psycopg.connect(pair.primary, autocommit=True) as old:
        failure = time.monotonic()
        old.execute("ALTER DATABASE postgres SET default_transaction_read_only = on")
        old.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_type = 'client backend'")  # fmt: skip
    with psycopg.connect(pair.standby, autocommit=True) as new:
        new.execute("SELECT pg_promote(true, 600)")
        new.execute("SET default_transaction_read_only = off")
        new.execute("ALTER DATABASE postgres RESET default_transaction_read_only")
    with psycopg.connect(pair.standby, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_write (at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO bench_write DEFAULT VALUES")
    return time.monotonic() - failure


def opsctl(pair: Pair, work: Path) -> tuple[float, float]:
    (work / "dsn").write_text(pair.primary + "\n")
    (work / "replica").write_text(pair.standby + "\n")
    config = work / "opsctl.yaml"
    config.write_text(CONFIG.format(dsn=work / "dsn", replica=work / "replica"))
    env = {**os.environ, "OPSCTL_STATE_DIR": str(work / "state")}
    started = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).with_name("opsctl")), "--config", str(config), "--yes", "-o",
                           "json", "drill", "failover", "bench", "--markers", "1s"],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"opsctl drill failover failed ({done.returncode}): {done.stderr.strip()}")
    return float(json.loads(done.stdout)["rto"]["actual_seconds"]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    raws: list[float] = []
    ours: list[float] = []
    walls: list[float] = []
    for n in range(args.runs):
        for which in ("raw", "opsctl") if n % 2 == 0 else ("opsctl", "raw"):
            with make_pair() as pair, tempfile.TemporaryDirectory() as tmp:
                if which == "raw":
                    raws.append(raw(pair))
                else:
                    rto, wall = opsctl(pair, Path(tmp))
                    ours.append(rto)
                    walls.append(wall)
    raw_rto, our_rto, wall = statistics.median(raws), statistics.median(ours), statistics.median(walls)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node(), "runs": args.runs,
        "raw_rto_seconds": round(raw_rto, 4), "opsctl_rto_seconds": round(our_rto, 4),
        "added_seconds": round(our_rto - raw_rto, 4), "ratio": round(our_rto / raw_rto, 2) if raw_rto else None,
        "opsctl_wall_seconds": round(wall, 3), "goal": "opsctl's RTO at most 0.5 s above the raw failover's",
    }  # fmt: skip
    print(f"raw failover RTO (median of {args.runs}): {raw_rto * 1000:.0f} ms")
    print(f"opsctl drill RTO (median of {args.runs}): {our_rto * 1000:.0f} ms  ({result['ratio']}x, "
          f"+{(our_rto - raw_rto) * 1000:.0f} ms)")  # fmt: skip
    print(f"opsctl drill wall time, start-up to report (median): {wall:.2f} s")
    out = HERE / "results" / "drill.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
