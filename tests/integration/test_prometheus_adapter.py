"""The Prometheus adapter against the real Prometheus server (and, for answers a healthy
Prometheus never gives, a loopback HTTP server scripted answer by answer)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsctl.errors import ExitCode, UpstreamError, UsageError
from opsctl.integrations.prometheus import MAX_ANSWER, PrometheusClient, Sample
from tests.fakes.prometheus import PrometheusServer, PromTest, free_port

COUNT = "http_request_duration_seconds_count"


class FakeTime:
    """Injected monotonic clock and sleep: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client(url: str, **kwargs: Any) -> PrometheusClient:
    return PrometheusClient(url, **kwargs)


def raw_error(server: PrometheusServer, promql: str) -> str:
    """Prometheus' own error text for a query, read without opsctl."""
    url = f"{server.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=10)
    return str(json.load(caught.value)["error"])


# ----------------------------------------------------------------------------- real Prometheus


def test_vector_query_gives_the_series_prometheus_has(prom: PromTest) -> None:
    prom.set("canary", rps=40)
    prom.set("stable", rps=40, error_ratio=0.5)
    selector = f'{COUNT}{{service="{prom.service}"}}'
    prom.wait_for(selector, lambda r: len(r) == 3)
    at = datetime.now(UTC)

    with client(prom.url) as prometheus:
        samples = prometheus.query(selector, at=at)

    expected = {
        frozenset(s["metric"].items()): float(s["value"][1])
        for s in prom.server.query(selector, at=at.timestamp())["result"]
    }
    assert {frozenset(s.labels.items()): s.value for s in samples} == expected
    assert {(s.labels["track"], s.labels["code"]) for s in samples} == {
        ("canary", "200"),
        ("stable", "200"),
        ("stable", "500"),
    }
    assert all(s.value is not None and s.value > 0 for s in samples)


def test_scalar_and_evaluation_time(prom: PromTest) -> None:
    with client(prom.url) as prometheus:
        assert prometheus.query("1 + 1") == [Sample({}, 2.0)]
        assert prometheus.value("time()", at=datetime(2024, 1, 1, tzinfo=UTC)) == 1704067200.0
        assert prometheus.value("time()", at=datetime(2024, 1, 1)) == 1704067200.0  # naive: UTC


def test_empty_result(prom: PromTest) -> None:
    with client(prom.url) as prometheus:
        assert prometheus.query(f'{COUNT}{{service="{prom.service}"}}') == []
        assert prometheus.value(f'sum({COUNT}{{service="{prom.service}"}})') is None


def test_special_values_are_none(prom: PromTest) -> None:
    with client(prom.url) as prometheus:
        assert prometheus.query("0/0") == [Sample({}, None)]
        assert prometheus.value("1/0") is None
        assert prometheus.value("-1/0") is None
        assert prometheus.value("vector(-1/0)") is None


def test_nan_of_a_series_that_stopped_growing(prom: PromTest) -> None:
    """Traffic drops to zero: 0/0 for the ratio and a quantile over no requests, both NaN → None."""
    ratio = (
        f'sum(rate({COUNT}{{service="{prom.service}",code="500"}}[3s]))'
        f' / sum(rate({COUNT}{{service="{prom.service}"}}[3s]))'
    )
    quantile = (
        "histogram_quantile(0.95, sum by (le) "
        f'(rate(http_request_duration_seconds_bucket{{service="{prom.service}"}}[3s])))'
    )
    prom.set("canary", rps=30, error_ratio=0.2)
    prom.wait_for_sample(ratio)
    prom.set("canary", rps=0)
    prom.wait_for(ratio, lambda r: len(r) == 1 and r[0]["value"][1] == "NaN")
    prom.wait_for(quantile, lambda r: len(r) == 1 and r[0]["value"][1] == "NaN")

    with client(prom.url) as prometheus:
        assert prometheus.query(ratio) == [Sample({}, None)]
        assert prometheus.value(ratio) is None
        assert prometheus.value(quantile) is None


def test_value_is_none_for_more_than_one_series(prom: PromTest) -> None:
    prom.set("canary", rps=10)
    prom.set("stable", rps=10)
    by_track = f'sum by (track) ({COUNT}{{service="{prom.service}"}})'
    prom.wait_for(by_track, lambda r: len(r) == 2)
    with client(prom.url) as prometheus:
        assert len(prometheus.query(by_track)) == 2
        assert prometheus.value(by_track) is None
        assert prometheus.value(f'sum({COUNT}{{service="{prom.service}"}})') is not None


def test_a_query_prometheus_rejects_is_a_usage_error_with_its_words(prom: PromTest) -> None:
    words = raw_error(prom.server, "sum(rate(x[5m])")
    with client(prom.url) as prometheus, pytest.raises(UsageError) as caught:
        prometheus.query("sum(rate(x[5m])")
    assert caught.value.exit_code == ExitCode.USAGE
    assert "parse error" in words
    assert words in caught.value.message
    assert "sum(rate(x[5m])" in caught.value.message


def test_a_query_prometheus_cannot_evaluate_is_a_usage_error(prom: PromTest) -> None:
    with client(prom.url) as prometheus, pytest.raises(UsageError, match="invalid regular expression"):
        prometheus.query('label_replace(vector(1), "a", "b", "c", "[")')


def test_a_range_vector_is_a_usage_error(prom: PromTest) -> None:
    with client(prom.url) as prometheus, pytest.raises(UsageError, match="gives a matrix") as caught:
        prometheus.query(f"{COUNT}[1m]")
    assert "rate()" in (caught.value.hint or "")


def test_server_down_is_upstream_within_the_budget() -> None:
    port = free_port()  # nothing listens there any more
    fake = FakeTime()
    prometheus = client(
        f"http://reader:hunter2-secret@127.0.0.1:{port}", budget=5.0, sleep=fake.sleep, monotonic=fake.monotonic
    )
    with pytest.raises(UpstreamError) as caught:
        prometheus.query("up")
    error = caught.value
    assert error.exit_code == ExitCode.UPSTREAM
    assert "unreachable" in error.message and "connection refused" in error.message
    assert len(fake.slept) >= 2 and sum(fake.slept) <= 5.0
    assert "hunter2-secret" not in " ".join(error.lines()) + repr(prometheus)


@pytest.mark.parametrize(
    ("url", "budget"), [("ftp://prometheus:9090", 15.0), ("prometheus:9090", 15.0), ("http://p:9090", 0.0)]
)
def test_bad_settings_are_usage_errors(url: str, budget: float) -> None:
    with pytest.raises(UsageError):
        PrometheusClient(url, budget=budget)


def test_a_bad_url_is_shown_without_its_password() -> None:
    with pytest.raises(UsageError) as caught:
        PrometheusClient("htp://reader:hunter2-secret@prometheus:9090")
    assert "hunter2-secret" not in caught.value.message


@pytest.fixture
def tls_prometheus(tmp_path: Path) -> Iterator[tuple[PrometheusServer, Path]]:
    from tests.fakes.tls import make_tls_material

    material = make_tls_material(tmp_path / "tls")
    server = PrometheusServer(tmp_path / "prom", "127.0.0.1:9", tls=material)
    (tmp_path / "prom").mkdir()
    server.start()
    yield server, material.ca_path
    server.stop()


def test_https_with_the_ca_bundle_given_explicitly(tls_prometheus: tuple[PrometheusServer, Path]) -> None:
    """The environment's SSL_CERT_FILE (the system bundle here) must neither replace the bundle nor be needed."""
    server, ca_path = tls_prometheus
    with client(server.url, ca_bundle=str(ca_path)) as prometheus:
        assert prometheus.value("2 * 21") == 42.0
    with client(server.url) as prometheus, pytest.raises(UpstreamError, match="certificate verif") as caught:
        prometheus.value("1")
    assert "ca_bundle" in (caught.value.hint or "")


def test_a_missing_ca_bundle_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="ca_bundle"):
        PrometheusClient("https://prometheus:9090", ca_bundle=str(tmp_path / "nope.pem"))


# ----------------------------------------------------------------------------- scripted answers


class Scripted:
    """Loopback HTTP: each request gets the next (status, body, trickle) answer; records headers."""

    def __init__(self, answers: list[tuple[int, bytes, bool]]) -> None:
        self.answers = list(answers)
        self.headers: list[dict[str, str]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                scripted.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, body, trickle = scripted.answers.pop(0) if scripted.answers else (500, b"script ended", False)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if status in (301, 302):
                    self.send_header("Location", "http://127.0.0.1:1/login")
                self.end_headers()
                try:
                    if not trickle:
                        self.wfile.write(body)
                        return
                    for byte in body[:100]:  # a byte every 50 ms: no read ever times out
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.05)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[list[Scripted]]:
    made: list[Scripted] = []
    yield made
    for server in made:
        server.close()


def serve(made: list[Scripted], *answers: tuple[int, bytes, bool]) -> Scripted:
    made.append(Scripted(list(answers)))
    return made[-1]


OK = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "7"]}}).encode()


def test_5xx_is_retried_and_requests_carry_the_trace(scripted: list[Scripted]) -> None:
    busy = json.dumps({"status": "error", "errorType": "timeout", "error": "query timed out"}).encode()
    server = serve(scripted, (503, busy, False), (200, OK, False))
    fake = FakeTime()
    with client(server.url, sleep=fake.sleep, monotonic=fake.monotonic) as prometheus:
        assert prometheus.value("up") == 7.0
    assert len(server.headers) == 2 and len(fake.slept) == 1
    assert all(h.get("traceparent", "").startswith("00-") for h in server.headers)


def test_5xx_to_the_end_names_prometheus_words(scripted: list[Scripted]) -> None:
    busy = json.dumps({"status": "error", "errorType": "timeout", "error": "query timed out"}).encode()
    server = serve(scripted, *[(503, busy, False)] * 20)
    fake = FakeTime()
    with client(server.url, budget=3.0, sleep=fake.sleep, monotonic=fake.monotonic) as prometheus:
        with pytest.raises(UpstreamError, match="query timed out"):
            prometheus.query("up")
    assert 1 < len(server.headers) < 20


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (404, b"<html>Not Found</html>", "404"),
        (302, b"", "302"),
        (401, b"Unauthorized", "401"),
        (200, b"<html>Grafana</html>", "not its query API"),
        (200, b"[" * 200_000, "not its query API"),  # nesting deeper than any parser's recursion
        (200, b'{"status": "success", "data": {"resultType": "vector", "result": [{"value": 1}]}}', "not its"),
        (200, b'{"status": "success", "data": {"resultType": "scalar", "result": [1, 7]}}', "not a string"),
    ],
)
def test_answers_that_are_not_the_api_are_upstream_errors(
    scripted: list[Scripted], status: int, body: bytes, words: str
) -> None:
    server = serve(scripted, (status, body, False))
    with client(server.url) as prometheus, pytest.raises(UpstreamError, match=words):
        prometheus.query("up")
    assert len(server.headers) == 1  # not retried


def test_an_oversized_answer_is_refused(scripted: list[Scripted]) -> None:
    server = serve(scripted, (200, b"[" * (MAX_ANSWER + 1), False))
    with client(server.url) as prometheus, pytest.raises(UsageError, match="exceeds 8 MiB"):
        prometheus.query("up")


def test_a_trickling_answer_ends_at_the_attempt_timeout(scripted: list[Scripted]) -> None:
    server = serve(scripted, (200, OK, True))
    fake = FakeTime()  # only sleeps are faked: the attempt's end is measured on the real clock
    with client(server.url, request_timeout=0.3, budget=0.6, sleep=fake.sleep) as prometheus:
        with pytest.raises(UpstreamError, match=r"no answer within 0\.3s"):
            prometheus.query("up")
