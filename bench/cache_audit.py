"""opsctl's cache audit against a bare key walk over the same keys, same run.

    .venv/bin/python bench/cache_audit.py [--keys 1000000] [--runs 3]

A redis-server of its own (free port, no persistence) gets ``--keys`` keys shaped like a cache
(sessions, feeds, users; ~10 % without a TTL, a quarter at 30 days), then, alternately:
- baseline: ``redis-cli --scan --pattern 'bench:*'`` (walks the keys, checks no TTL at all);
- opsctl: ``opsctl cache audit bench -o json`` (CLI start-up, SCAN on the node, PTTL of every key
  pipelined, groups, histogram, MEMORY USAGE samples, the report).
Medians of ``--runs`` (seconds per key walked — keys with minutes of TTL expire during the run —
scaled to ``--keys``); keys/s of each and the ratio (goal: opsctl within 1.5x of the bare walk).
Writes bench/results/cache_audit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
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

import redis  # noqa: E402

from tests.fakes.redis_keys import keyspace, load_keys  # noqa: E402  (after the path set-up)

CONFIG = """\
version: 1
environments: [staging]
default_env: staging
teams: {{platform: {{}}}}
services:
  - name: bench
    tier: 2
    owner: platform
    cache:
      redis_url: "redis://127.0.0.1:{port}/0"
      key_prefix: "bench:"
      groups:
        session: {{pattern: "session:*", max_ttl: 7d}}
        feed: {{pattern: "feed:*", max_ttl: 7d}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
    elapsed = time.monotonic() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[:500]}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-cache-"))
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        started = time.monotonic()
        loaded = load_keys(client, keyspace(args.keys, "bench:", seed=7), batch=10_000)
        print(f"loaded {loaded} keys in {time.monotonic() - started:.1f}s")
        config = work / "opsctl.yaml"
        config.write_text(CONFIG.format(port=port))
        env = {**os.environ, "OPSCTL_STATE_DIR": str(work / "state")}
        opsctl = str(Path(sys.executable).with_name("opsctl"))
        base_times, ours = [], []
        report: dict[str, object] = {}
        for n in range(args.runs):
            order = ("baseline", "opsctl") if n % 2 == 0 else ("opsctl", "baseline")
            for which in order:
                if which == "baseline":
                    elapsed, out = timed(["redis-cli", "-p", str(port), "--scan", "--pattern", "bench:*"])
                    base_times.append(elapsed / max(1, out.count("\n")))  # keys with minutes of TTL expire meanwhile
                else:
                    elapsed, out = timed([opsctl, "--config", str(config), "-o", "json", "cache", "audit", "bench"],
                                         env)  # fmt: skip
                    report = json.loads(out)
                    ours.append(elapsed / max(1, int(report["scanned"]) + int(report["vanished"])))
        base, mine = statistics.median(base_times) * loaded, statistics.median(ours) * loaded  # per key x keys
        result = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node(), "keys": loaded,
            "runs": args.runs, "baseline_seconds": round(base, 3), "opsctl_seconds": round(mine, 3),
            "baseline_keys_per_second": round(loaded / base), "opsctl_keys_per_second": round(loaded / mine),
            "ratio": round(mine / base, 2), "goal": "opsctl within 1.5x of redis-cli --scan",
            "found": {"without_ttl": report.get("without_ttl"), "over_max_ttl": report.get("over_max_ttl")},
        }  # fmt: skip
        print(f"redis-cli --scan: {base:.2f}s ({loaded / base:,.0f} keys/s)")
        print(f"opsctl cache audit: {mine:.2f}s ({loaded / mine:,.0f} keys/s) → {result['ratio']}x")
        out_path = HERE / "results" / "cache_audit.json"
        out_path.parent.mkdir(exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
