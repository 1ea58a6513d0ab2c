"""The real Prometheus server (/usr/bin/prometheus) for tests, scraping the test exporter, and its fixtures.

:class:`PrometheusServer` runs ``prometheus`` on a free 127.0.0.1 port with its TSDB in a
temp dir and a config scraping the exporter every second, waits for ``/-/ready``, and stops it
(SIGTERM, then SIGKILL after 10 s; it also gets SIGTERM if the test process dies). Its queries
go through ``urllib``, not opsctl's adapter, so adapter tests are checked against an independent
reader; with ``tls=`` it serves HTTPS (its ``--web.config.file``). A new scrape target is picked up on Prometheus' 5 s discovery tick, so its first
sample comes some seconds after the start; new series of a known target show at the next scrape.

Fixtures (register them with ``from tests.fakes.prometheus import prom, prometheus  # noqa: F401``
in tests/conftest.py, or ``-p tests.fakes.prometheus`` on the pytest command line):

* ``prometheus`` (session): one server and one exporter for the whole run; it has waited for the
  exporter's first scrape, so tests do not each pay the discovery delay;
* ``prom`` (per test): a :class:`PromTest` bound to a service name of its own (``svc-<hex>``)
  so tests never see each other's series; its series are removed at the end of the test.

    def test_x(prom):
        prom.set("canary", rps=50, error_ratio=0.3)
        prom.wait_for_sample(f'http_request_duration_seconds_count{{service="{prom.service}"}}')
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.fakes.exporter import TRACKS, Exporter

if TYPE_CHECKING:
    from tests.fakes.tls import TLSMaterial

BINARY = os.environ.get("OPSCTL_TEST_PROMETHEUS", "/usr/bin/prometheus")
START_TIMEOUT = 30.0  # hang guards, not expectations
STOP_TIMEOUT = 10.0
SAMPLE_TIMEOUT = 60.0

_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: exporter
    static_configs:
      - targets: ["{target}"]
"""

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies (PR_SET_PDEATHSIG), so no server outlives a killed run."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (AttributeError, OSError):  # not Linux: the teardown alone stops it
        pass


class PrometheusServer:
    def __init__(self, workdir: Path, target: str, binary: str = BINARY, tls: TLSMaterial | None = None) -> None:
        self.workdir = workdir
        self.target = target
        self.binary = binary
        self.tls = tls
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_after: float | None = None  # seconds from start to /-/ready (measured, for the record)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def _opener(self) -> urllib.request.OpenerDirector:
        if self.tls is None:
            return _OPENER
        https = urllib.request.HTTPSHandler(context=self.tls.client_context())
        return urllib.request.build_opener(urllib.request.ProxyHandler({}), https)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> PrometheusServer:
        if not os.access(self.binary, os.X_OK):
            pytest.fail(
                f"{self.binary} is missing: install the Debian package 'prometheus' (scripts/test.sh does) "
                "or set OPSCTL_TEST_PROMETHEUS to the binary",
                pytrace=False,
            )
        config = self.workdir / "prometheus.yml"
        config.write_text(_CONFIG.format(target=self.target))
        flags = [f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}"]
        if self.tls is not None:  # Prometheus' own TLS (--web.config.file), for clients' CA handling
            web = self.workdir / "web.yml"
            web.write_text(f"tls_server_config:\n  cert_file: {self.tls.cert_path}\n  key_file: {self.tls.key_path}\n")
            flags.append(f"--web.config.file={web}")
        for _ in range(3):  # another process may take the free port before Prometheus binds it
            self.port = free_port()
            began = time.monotonic()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [self.binary, *flags, f"--web.listen-address=127.0.0.1:{self.port}"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                )
            if self._wait_ready():
                self.ready_after = time.monotonic() - began
                return self
            if "address already in use" not in self.log_tail():
                break
        self.stop()
        pytest.fail(f"Prometheus did not become ready; its log ends:\n{self.log_tail()}", pytrace=False)

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with self._opener.open(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    # ------------------------------------------------------------- reading

    def query(self, promql: str, at: float | None = None) -> dict[str, Any]:
        """``data`` of an instant query at ``at`` (Unix time; default the server's now), read without opsctl."""
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode(params)
        with self._opener.open(url, timeout=10) as answer:
            body: dict[str, Any] = json.load(answer)
        return dict(body["data"])

    def wait_for(
        self, promql: str, until: Callable[[list[dict[str, Any]]], bool], timeout: float = SAMPLE_TIMEOUT
    ) -> list[dict[str, Any]]:
        """Poll the query until ``until(result)`` holds; the timeout is a hang guard, not a timing assertion."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while True:
            data = self.query(promql)
            result = data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]
            if until(result):
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"after {timeout:g}s, {promql} still gives {result}", pytrace=False)
            time.sleep(0.25)

    def wait_for_sample(self, promql: str, timeout: float = SAMPLE_TIMEOUT) -> list[dict[str, Any]]:
        """Poll until the query has a result with a number (not NaN)."""
        return self.wait_for(promql, lambda r: any(s["value"][1] not in ("NaN", "+Inf", "-Inf") for s in r), timeout)

    def wait_for_absence(self, promql: str, timeout: float = SAMPLE_TIMEOUT) -> None:
        """Poll until the query gives nothing (e.g. after a series stopped and left the window)."""
        self.wait_for(promql, lambda r: not r, timeout)


class PromTest:
    """One test's view: its own service name on the shared exporter, with the server to read from."""

    def __init__(self, server: PrometheusServer, exporter: Exporter, service: str) -> None:
        self.server = server
        self.exporter = exporter
        self.service = service
        self.url = server.url

    def set(self, track: str, **traffic: float) -> None:
        self.exporter.set(self.service, track, **traffic)

    def stop(self, track: str) -> None:
        self.exporter.stop(self.service, track)

    def wait_for_sample(self, promql: str, timeout: float = SAMPLE_TIMEOUT) -> list[dict[str, Any]]:
        return self.server.wait_for_sample(promql, timeout)

    def wait_for_absence(self, promql: str, timeout: float = SAMPLE_TIMEOUT) -> None:
        self.server.wait_for_absence(promql, timeout)

    def wait_for(
        self, promql: str, until: Callable[[list[dict[str, Any]]], bool], timeout: float = SAMPLE_TIMEOUT
    ) -> list[dict[str, Any]]:
        return self.server.wait_for(promql, until, timeout)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusServer, Exporter]]:
    """One real Prometheus scraping one exporter for the session, past the exporter's first scrape."""
    with Exporter() as exporter:
        server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), exporter.address)
        try:
            server.start()
            server.wait_for_sample('up{job="exporter"} == 1')
            yield server, exporter
        finally:
            server.stop()


@pytest.fixture
def prom(prometheus: tuple[PrometheusServer, Exporter]) -> Iterator[PromTest]:
    server, exporter = prometheus
    handle = PromTest(server, exporter, f"svc-{uuid.uuid4().hex[:10]}")
    yield handle
    for track in TRACKS:
        exporter.stop(handle.service, track)
