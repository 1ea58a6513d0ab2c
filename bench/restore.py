"""opsctl's PITR restore end to end against the raw pgBackRest steps on the same backup, same run.

    .venv/bin/python bench/restore.py [--rows 200000] [--runs 3]

A source cluster (initdb, WAL archived into a posix pgBackRest repository, a full backup, then
``--rows`` more rows archived) is restored, alternately:
- raw: ``pgbackrest restore --type=default`` into a new directory, ``pg_ctl start``, poll until
  ``pg_is_in_recovery()`` is false;
- opsctl: ``opsctl db restore SERVICE --pitr --to latest --yes`` (CLI start-up, window check, run
  record and audit, the same restore/start/promotion, then verification and the report).
Medians of ``--runs`` each; the ratio (goal: opsctl adds at most 15 %).  Every copy is stopped and
removed.  Writes bench/results/restore.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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

from tests.fakes.pgbackrest_cluster import (  # noqa: E402  (after the path set-up)
    as_postgres,
    free_port,
    make_dir,
    pg_bin,
    start_source,
    stop_cluster,
)

CONFIG = """\
version: 1
environments: [staging]
default_env: staging
teams: {{platform: {{}}}}
policy: {{confirm: []}}
services:
  - name: bench
    tier: 2
    owner: platform
    database:
      dsn: file:{dsn}
      backup: {{provider: pgbackrest, stanza: {stanza}, config: {config}}}
      restore_root: {root}
"""


def wait_promoted(port: int) -> None:
    import psycopg

    while True:
        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2) as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,):
                    return
        except psycopg.Error:
            pass
        time.sleep(0.05)


def raw(source: object, root: Path, n: int) -> float:
    data = root / f"raw-{n}"
    port = free_port()
    started = time.perf_counter()
    make_dir(data)
    as_postgres("pgbackrest", f"--config={source.config}", f"--stanza={source.stanza}",  # type: ignore[attr-defined]
                f"--pg1-path={data}", "--type=default", "--archive-mode=off", "restore")  # fmt: skip
    as_postgres(str(pg_bin() / "pg_ctl"), "-D", str(data), "-l", str(root / f"raw-{n}.log"), "-o",
                f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c archive_mode=off",
                "-w", "start")  # fmt: skip
    wait_promoted(port)
    took = time.perf_counter() - started
    stop_cluster(data)
    shutil.rmtree(data, ignore_errors=True)
    return took


def with_opsctl(config: Path, root: Path, n: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("opsctl")), "--config", str(config), "--yes", "-o", "json", "db",
         "restore", "bench", "--pitr", "--to", "latest", "--target", f"ops-{n}"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OPSCTL_STATE_DIR": str(config.parent / "state")},
    )  # fmt: skip
    took = time.perf_counter() - started
    data = root / f"ops-{n}"
    stop_cluster(data)
    shutil.rmtree(data, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"opsctl restore failed ({done.returncode}): {done.stderr.strip()}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="opsctl-bench-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    base.chmod(0o755)
    source = None
    try:
        source = start_source(base)
        source.sql(
            f"CREATE TABLE bulk AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, {args.rows}) g"
        )
        source.switch_wal()
        root = make_dir(base / "restores")
        work = Path(tempfile.mkdtemp(prefix="opsctl-bench-cfg-"))
        (work / "dsn").write_text(source.dsn + "\n")
        config = work / "opsctl.yaml"
        config.write_text(CONFIG.format(dsn=work / "dsn", stanza=source.stanza, config=source.config, root=root))
        raws, opss = [], []
        for n in range(args.runs):
            raws.append(raw(source, root, n))
            opss.append(with_opsctl(config, root, n))
        r, o = statistics.median(raws), statistics.median(opss)
        print(f"raw pgbackrest restore + start + promotion: median {r:.2f}s ({', '.join(f'{x:.2f}' for x in raws)})")
        print(f"opsctl db restore --pitr (verified, reported): median {o:.2f}s ({', '.join(f'{x:.2f}' for x in opss)})")
        print(f"ratio {o / r:.2f} -> opsctl adds {100 * (o / r - 1):.0f}% (goal <= 15%)")
        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
            "rows_after_backup": args.rows, "runs": args.runs,
            "raw_seconds": [round(x, 3) for x in raws], "opsctl_seconds": [round(x, 3) for x in opss],
            "raw_median": round(r, 3), "opsctl_median": round(o, 3), "ratio": round(o / r, 3),
        }  # fmt: skip
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "restore.json").write_text(json.dumps(result, indent=2) + "\n")
        shutil.rmtree(work, ignore_errors=True)
    finally:
        if source is not None:
            stop_cluster(source.data)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
