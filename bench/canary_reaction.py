"""How fast a canary is rolled back after an error spike, in analysis intervals.

    .venv/bin/python bench/canary_reaction.py [--runs 5] [--interval 6]

Each run: a real ``opsctl deploy canary`` (steps 20,50,100) against a fake cluster whose
controller makes pods ready, judged by the real Prometheus scraping a test exporter every
second.  When the rollout reaches the 20 % analysis, the canary's error ratio jumps to 50 %.
Measured: from the moment Prometheus first shows the spike (the canary's error ratio over the
analysis window above the ceiling) to the moment all traffic is back on stable (the canary
Deployment at zero replicas), divided by the analysis interval (``--interval``, the bake time
per step).  Goal: at most one interval (Flagger's default needs five failed checks at one-minute
intervals).  Writes bench/results/canary_reaction.json.
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
import uuid
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.deploy.conftest import CONFIG, NS, deployment, route, service  # noqa: E402
from tests.fakes.exporter import Exporter  # noqa: E402
from tests.fakes.kube import KubeFake  # noqa: E402
from tests.fakes.kube_config import write_kubeconfig  # noqa: E402
from tests.fakes.kube_controller import Controller  # noqa: E402
from tests.fakes.prometheus import PrometheusServer  # noqa: E402

OPSCTL = str(Path(sys.executable).with_name("opsctl"))


def error_ratio(server: PrometheusServer, name: str) -> float | None:
    query = (
        f'(sum(rate(http_request_duration_seconds_count{{service="{name}",track="canary",code=~"5.."}}[4s])) or vector(0))'
        f' / sum(rate(http_request_duration_seconds_count{{service="{name}",track="canary"}}[4s]))'
    )
    result = server.query(query).get("result", [])
    try:
        return float(result[0]["value"][1]) if result else None
    except (ValueError, KeyError, IndexError):
        return None


def one_run(tmp: Path, server: PrometheusServer, exporter: Exporter, interval: float) -> float:
    name = f"svc-{uuid.uuid4().hex[:10]}"
    for track in ("stable", "canary"):
        exporter.set(name, track, rps=40, error_ratio=0.0, latency_ms=80)
    with KubeFake() as prod, Controller(prod):
        for obj in (deployment(), service(), route()):
            prod.put_object(obj)
        write_kubeconfig(tmp / "kubeconfig", {"prod-eu": prod, "staging-eu": prod})
        config = tmp / f"{name}.yaml"
        config.write_text(CONFIG.format(kubeconfig=tmp / "kubeconfig", prometheus=server.url, name=name,
                                        traffic="{kind: service}", preview="false"))  # fmt: skip
        server.wait_for_sample(f'http_request_duration_seconds_count{{service="{name}",track="canary"}}')
        argv = [OPSCTL, "-c", str(config), "--yes", "deploy", "canary", name, "--image", "web:2",
                "--steps", "20,50,100", "--interval", f"{interval:g}s", "--skip-staging-check"]  # fmt: skip
        env = {**os.environ, "OPSCTL_STATE_DIR": str(tmp / f"state-{name}")}
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        while True:  # the rollout reaches the 20% bake: the canary has its pods
            canary = prod.get_object("deployments", NS, "web-canary")
            if canary is not None and canary["spec"]["replicas"] > 0:
                break
            if proc.poll() is not None:
                raise SystemExit(f"the canary ended before its first step: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.02)
        exporter.set(name, "canary", error_ratio=0.5)
        visible = None
        while True:
            now = time.monotonic()
            if visible is None:
                ratio = error_ratio(server, name)
                if ratio is not None and ratio > 0.01:
                    visible = now
            canary = prod.get_object("deployments", NS, "web-canary")
            if visible is not None and canary is not None and canary["spec"]["replicas"] == 0:
                back = now
                break
            time.sleep(0.05)
        proc.wait(timeout=120)
        assert proc.returncode == 1, proc.stderr.read() if proc.stderr else ""
        for track in ("stable", "canary"):
            exporter.stop(name, track)
        return (back - visible) / interval


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", type=float, default=6.0, help="bake time per step, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Exporter() as exporter:
        workdir = Path(tmp) / "prometheus"
        workdir.mkdir()
        server = PrometheusServer(workdir, exporter.address).start()
        try:
            exporter.set("warmup", "stable", rps=1)
            server.wait_for_sample('http_request_duration_seconds_count{service="warmup"}')
            reactions = [one_run(Path(tmp), server, exporter, args.interval) for _ in range(args.runs)]
        finally:
            server.stop()
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        "interval_seconds": args.interval,
        "window_seconds": 4,
        "reaction_in_intervals": [round(r, 2) for r in reactions],
        "median": round(statistics.median(reactions), 2),
        "max": round(max(reactions), 2),
        "goal": "at most 1 interval",
    }
    print(f"reaction (spike visible in Prometheus -> all traffic on stable), in intervals of {args.interval:g}s:")
    print(f"  runs {result['reaction_in_intervals']}  median {result['median']}  max {result['max']}")
    (HERE / "results" / "canary_reaction.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
