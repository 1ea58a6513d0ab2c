"""The backfill's throughput and its cost to a concurrent writer, against baselines measured in
the same run on the same data.

    .venv/bin/python bench/backfill.py [--rows 1000000] [--dsn postgresql://postgres@127.0.0.1:5432/postgres]

1. Throughput: two identical tables of ``--rows`` rows (``users``: id bigserial, email text);
   on one a single ``UPDATE t SET email_normalized = lower(email)`` (the baseline: fastest, but
   one long transaction locking every row), on the other opsctl's backfill (batches by primary
   key, each its own short transaction, the cursor committed with each batch).  Rows per second
   of both, and the ratio (goal: at least 0.5).
2. Writer latency: on a fresh table of the same size with the dual-write trigger installed (as
   during a real phase 3), a writer inserting and updating rows (the previous app version) runs
   for a few seconds on its own (baseline p50/p99), then during the backfill (p50/p99); the p99
   added by the backfill (goal: under 50 ms).
Creates and drops a scratch database.  Writes bench/results/backfill.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "src"))

CHANGE = "table: {table}\ncolumn: {{name: email_normalized, type: text}}\nbackfill: lower(email)\n"


def make_table(conn: Any, table: str, rows: int) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, email text NOT NULL, email_normalized text)")
    conn.execute(f"INSERT INTO {table} (email) SELECT 'User' || g || '@Example.COM' FROM generate_series(1, %s) g",
                 (rows,))  # fmt: skip
    conn.execute(f"VACUUM ANALYZE {table}")


def load_change(tmp: Path, table: str) -> Any:
    from opsctl.migrate.change import load_change as load

    path = tmp / f"{table}.yaml"
    path.write_text(CHANGE.format(table=table))
    return load(path)


def backfill(dsn: str, change: Any) -> tuple[float, int]:
    import psycopg

    from opsctl.migrate import backfill as bf

    with psycopg.connect(dsn, autocommit=True) as conn:
        bf.ensure_state_table(conn)
    started = time.perf_counter()
    result = bf.run_backfill(
        lambda: psycopg.connect(dsn, autocommit=True), change, bf.Options(),
        on_progress=lambda p: None, checkpoint=lambda: None, sleep=time.sleep,
    )  # fmt: skip
    return time.perf_counter() - started, int(result.done_rows)


class Writer:
    def __init__(self, dsn: str, table: str) -> None:
        self.dsn, self.table = dsn, table
        self.latencies: list[float] = []
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import random

        import psycopg

        rng = random.Random(7)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            top = int(conn.execute(f"SELECT max(id) FROM {self.table}").fetchone()[0])
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    if rng.random() < 0.5:
                        conn.execute(f"INSERT INTO {self.table} (email) VALUES (%s)", (f"W{rng.random()}@x.io",))
                    else:
                        conn.execute(f"UPDATE {self.table} SET email = %s WHERE id = %s",
                                     (f"U{rng.random()}@x.io", rng.randint(1, top)))  # fmt: skip
                except psycopg.Error:
                    self.errors += 1
                self.latencies.append(time.perf_counter() - t0)
                time.sleep(0.002)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def main() -> int:
    import tempfile

    import psycopg

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--writer-seconds", type=float, default=5.0)
    args = parser.parse_args()

    name = f"opsctl_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = args.dsn.rsplit("/", 1)[0] + f"/{name}"
    tmp = Path(tempfile.mkdtemp())
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for table in ("t_update", "t_backfill"):
                make_table(conn, table, args.rows)
            conn.execute("CHECKPOINT")
            t0 = time.perf_counter()
            conn.execute("UPDATE t_update SET email_normalized = lower(email)")
            update_s = time.perf_counter() - t0
            conn.execute("CHECKPOINT")
        backfill_s, done = backfill(dsn, load_change(tmp, "t_backfill"))
        update_rate, backfill_rate = args.rows / update_s, done / backfill_s
        print(f"single UPDATE: {args.rows} rows in {update_s:.2f}s = {update_rate:,.0f} rows/s")
        print(f"backfill:      {done} rows in {backfill_s:.2f}s = {backfill_rate:,.0f} rows/s"
              f" -> ratio {backfill_rate / update_rate:.2f} (goal >= 0.5)")  # fmt: skip

        from opsctl.migrate.change import dual_write_sql

        writer_change = load_change(tmp, "t_writer")
        with psycopg.connect(dsn, autocommit=True) as conn:
            make_table(conn, "t_writer", args.rows)
            with conn.transaction():  # as in production: the dual-write trigger is on while the backfill runs
                for statement in dual_write_sql(writer_change):
                    conn.execute(statement)
            conn.execute("CHECKPOINT")
        with Writer(dsn, "t_writer") as alone:
            time.sleep(args.writer_seconds)
        with Writer(dsn, "t_writer") as during:
            busy_s, _ = backfill(dsn, writer_change)
        base99, during99 = pct(alone.latencies, 0.99), pct(during.latencies, 0.99)
        print(f"writer alone:         p50 {pct(alone.latencies, 0.5):.2f} ms, p99 {base99:.2f} ms"
              f" ({len(alone.latencies)} writes)")  # fmt: skip
        print(f"writer with backfill: p50 {pct(during.latencies, 0.5):.2f} ms, p99 {during99:.2f} ms"
              f" ({len(during.latencies)} writes over {busy_s:.1f}s, {during.errors} errors)"
              f" -> p99 added {during99 - base99:.2f} ms (goal < 50 ms)")  # fmt: skip
        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {__import__('os').cpu_count()} cpus, Python {platform.python_version()}",
            "rows": args.rows,
            "single_update": {"seconds": round(update_s, 2), "rows_per_s": round(update_rate)},
            "backfill": {"seconds": round(backfill_s, 2), "rows_per_s": round(backfill_rate)},
            "throughput_ratio": round(backfill_rate / update_rate, 2),
            "writer_alone_ms": {"p50": round(pct(alone.latencies, 0.5), 2), "p99": round(base99, 2),
                                "writes": len(alone.latencies)},
            "writer_during_backfill_ms": {"p50": round(pct(during.latencies, 0.5), 2), "p99": round(during99, 2),
                                          "writes": len(during.latencies), "errors": during.errors},
            "p99_added_ms": round(during99 - base99, 2),
            "median_write_ms_all": round(statistics.median(alone.latencies + during.latencies) * 1000, 2),
        }  # fmt: skip
        out = HERE / "results" / "backfill.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
