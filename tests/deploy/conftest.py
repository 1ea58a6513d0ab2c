"""A world for deploy tests: two fake clusters (prod-eu, staging-eu) with their controllers, the
real Prometheus scraping a test exporter, a config pointing opsctl at them, and the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import OPSCTL
from tests.fakes.kube import KubeFake
from tests.fakes.kube_config import write_kubeconfig
from tests.fakes.kube_controller import Controller

NS = "platform"
DEP = "web"
REPO = Path(__file__).resolve().parents[2]


def deployment(name: str = DEP, image: str = "web:1", replicas: int = 4) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "track": "stable"}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }  # fmt: skip


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": DEP, "namespace": NS},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }  # fmt: skip


def route() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": DEP, "namespace": NS},
        "spec": {"parentRefs": [{"name": "gateway"}], "rules": [{"backendRefs": [{"name": DEP, "port": 80}]}]},
    }  # fmt: skip


CONFIG = """\
version: 1
environments: [production, staging]
default_env: production
teams:
  platform: {{}}
policy:
  lock_ttl: 3s
  deploy:
    poll: 0.2
    ready_timeout: 20s
    bluegreen_keep: 3s
    analysis: {{window: 4s, min_requests: 5, inconclusive_limit: 2}}
integrations:
  kubernetes: {{kubeconfig: {kubeconfig}, timeout: 4s, request_timeout: 2s}}
  prometheus: {{url: {prometheus}, timeout: 5s}}
services:
  - name: {name}
    tier: 1
    owner: platform
    kubernetes:
      context: prod-eu
      namespace: platform
      deployment: web
      traffic: {traffic}
    prometheus: {{preview: {preview}}}
    environments:
      staging:
        kubernetes: {{context: staging-eu, namespace: platform, deployment: web, traffic: {traffic}}}
"""


def _reset_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class World:
    tmp: Path
    prod: KubeFake
    staging: KubeFake
    controllers: dict[str, Controller]
    prom: Any
    env: dict[str, str]
    config: Path = field(init=False)
    started: subprocess.Popen[str] | None = field(default=None, init=False)

    @property
    def name(self) -> str:
        return str(self.prom.service)

    def write_config(self, *, traffic: str = "{kind: service}", preview: bool = False) -> None:
        self.config = self.tmp / "opsctl.yaml"
        self.config.write_text(CONFIG.format(
            kubeconfig=self.tmp / "kubeconfig", prometheus=self.prom.server.url, name=self.name,
            traffic=traffic, preview=str(preview).lower(),
        ))  # fmt: skip

    def argv(self, *args: str) -> list[str]:
        return [str(OPSCTL), "-c", str(self.config), *args]

    def run(self, *args: str, timeout: float = 120) -> Result:
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str) -> subprocess.Popen[str]:
        self.started = subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
            preexec_fn=_reset_signals,
        )  # fmt: skip
        return self.started

    def status(self, *env: str) -> dict[str, Any]:
        result = self.run(*env, "-o", "json", "deploy", "status", self.name)
        assert result.code == 0, result.stderr
        return dict(result.json())

    def wait_status(self, predicate: Any, *env: str, timeout: float = 180) -> dict[str, Any]:
        """Poll 'deploy status' until ``predicate(status)`` (a hang guard, not a timing check); the
        process started last is watched so that an early exit fails at once with its own output."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.status(*env)
            if predicate(current):
                return current
            proc = self.started
            if proc is not None and proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(
                    f"the process exited ({proc.returncode}) before the status matched: {current}\n"
                    f"stdout: {out[-2000:]}\nstderr: {err[-2000:]}"
                )
            assert time.monotonic() < deadline, f"status never matched: {current}"
            time.sleep(0.2)

    def dep(self, name: str = DEP, cluster: str = "prod") -> dict[str, Any]:
        fake = self.prod if cluster == "prod" else self.staging
        found = fake.get_object("deployments", NS, name)
        assert found is not None, name
        return found

    def image(self, name: str = DEP, cluster: str = "prod") -> str:
        return str(self.dep(name, cluster)["spec"]["template"]["spec"]["containers"][0]["image"])

    def replicas(self, name: str, cluster: str = "prod") -> int:
        return int(self.dep(name, cluster)["spec"]["replicas"])

    def healthy(self, track: str = "canary") -> None:
        self.prom.set(track, rps=40, error_ratio=0.0, latency_ms=80)

    def audit(self) -> list[dict[str, Any]]:
        result = self.run("-o", "json", "audit", "--service", self.name)
        assert result.code == 0, result.stderr
        return list(result.json())


@pytest.fixture
def world(tmp_path: Path, prom: Any) -> Iterator[World]:
    with KubeFake() as prod, KubeFake() as staging:
        for fake in (prod, staging):
            fake.put_object(deployment())
            fake.put_object(service())
            fake.put_object(route())
        controllers = {"prod": Controller(prod).start(), "staging": Controller(staging).start()}
        write_kubeconfig(tmp_path / "kubeconfig", {"prod-eu": prod, "staging-eu": staging})
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        w = World(tmp_path, prod, staging, controllers, prom, env)
        w.write_config()
        w.healthy("stable")
        w.healthy("canary")
        for track in ("stable", "canary"):  # enough samples for rate() over the analysis window (4s)
            prom.wait_for_sample(
                f'sum(rate(http_request_duration_seconds_count{{service="{w.name}",track="{track}"}}[4s]))'
            )
        try:
            yield w
        finally:
            for controller in controllers.values():
                controller.stop()
