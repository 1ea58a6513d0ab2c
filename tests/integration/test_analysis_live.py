"""Canary analysis end to end: the real Prometheus scraping the test exporter, measured and judged.

A short window (5 s, scrapes every second) keeps the tests quick; the exporter's counters
grow exactly linearly, so rates over it are as exact as over minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opsctl.deploy.analysis import Thresholds, judge, measure, queries_for
from opsctl.errors import UsageError
from opsctl.integrations.prometheus import PrometheusClient
from tests.fakes.prometheus import PromTest

WINDOW = "5s"
THRESHOLDS = Thresholds(
    max_error_ratio=0.01,
    error_ratio_factor=2.0,
    error_ratio_min_diff=0.005,
    p95_limit_ms=500,
    latency_factor=1.5,
    latency_min_diff_ms=50,
    min_requests=20,
)


@pytest.fixture
def client(prom: PromTest) -> Iterator[PrometheusClient]:
    with PrometheusClient(prom.url) as made:
        yield made


def settled(prom: PromTest, queries: dict[str, str]) -> None:
    """Wait (hang guard only) until both tracks have enough requests and a p95 in the window."""
    for track in ("canary", "stable"):
        prom.wait_for(
            queries["requests"].replace("{track}", track),
            lambda r: len(r) == 1 and float(r[0]["value"][1]) >= 4 * THRESHOLDS.min_requests,
        )
        prom.wait_for_sample(queries["p95_ms"].replace("{track}", track))


def test_a_healthy_canary_passes(prom: PromTest, client: PrometheusClient) -> None:
    prom.set("stable", rps=50, error_ratio=0.0, latency_ms=120)  # no 5xx series at all: ratio 0, not unknown
    prom.set("canary", rps=50, error_ratio=0.002, latency_ms=140)
    queries = queries_for(prom.service, WINDOW, {})
    settled(prom, queries)

    measurement = measure(client, queries)
    verdict = judge(measurement, THRESHOLDS)

    assert verdict.result == "pass", verdict.reason
    assert measurement.stable.error_ratio == 0.0
    assert measurement.canary.error_ratio == pytest.approx(0.002)
    assert measurement.canary.p95_ms == pytest.approx(140, rel=0.01)
    assert measurement.stable.p95_ms == pytest.approx(120, rel=0.01)
    assert measurement.canary.requests is not None and measurement.canary.requests >= 80


def test_thirty_percent_errors_on_the_canary_fails(prom: PromTest, client: PrometheusClient) -> None:
    prom.set("stable", rps=50, error_ratio=0.001, latency_ms=120)
    prom.set("canary", rps=50, error_ratio=0.3, latency_ms=120)
    queries = queries_for(prom.service, WINDOW, {})
    settled(prom, queries)

    verdict = judge(measure(client, queries), THRESHOLDS)

    assert verdict.result == "fail"
    failed = {c.metric: c for c in verdict.checks if c.result == "fail"}
    assert set(failed) == {"error_ratio", "error_ratio_vs_stable"}
    assert failed["error_ratio"].canary == pytest.approx(0.3)
    assert failed["error_ratio"].stable == pytest.approx(0.001)


def test_canary_latency_over_the_sla_fails(prom: PromTest, client: PrometheusClient) -> None:
    prom.set("stable", rps=50, latency_ms=120)
    prom.set("canary", rps=50, latency_ms=800)
    queries = queries_for(prom.service, WINDOW, {})
    settled(prom, queries)

    verdict = judge(measure(client, queries), THRESHOLDS)

    assert verdict.result == "fail"
    p95 = next(c for c in verdict.checks if c.metric == "p95_ms")
    assert (p95.result, p95.limit) == ("fail", 500)
    assert p95.canary == pytest.approx(800, rel=0.01)


def test_a_stopped_canary_is_inconclusive(prom: PromTest, client: PrometheusClient) -> None:
    prom.set("stable", rps=50)
    prom.set("canary", rps=50)
    queries = queries_for(prom.service, WINDOW, {})
    settled(prom, queries)
    prom.stop("canary")  # the canary pods are gone: their series go stale and leave the window
    prom.wait_for_absence(queries["requests"].replace("{track}", "canary"))

    measurement = measure(client, queries)
    verdict = judge(measurement, THRESHOLDS)

    assert verdict.result == "inconclusive"
    assert measurement.canary.notes == {"requests": "no data", "error_ratio": "no data", "p95_ms": "no data"}
    assert "canary no data" in verdict.reason
    assert verdict.to_dict()["canary"]["requests"] is None


def test_overrides_errors_count_and_multi_series_queries(prom: PromTest, client: PrometheusClient) -> None:
    """A service's own queries: an ``errors`` count makes the ratio; one giving a series per code is unknown."""
    prom.set("stable", rps=40, error_ratio=0.1)
    prom.set("canary", rps=40, error_ratio=0.1)
    errors = (
        'sum(increase(http_request_duration_seconds_count{service="{service}",track="{track}",code="500"}[{window}]))'
    )
    per_code = (
        'sum by (code) (rate(http_request_duration_seconds_count{service="{service}",track="{track}"}[{window}]))'
    )
    queries = queries_for(prom.service, WINDOW, {"errors": errors, "p95_ms": per_code})
    settled(prom, {**queries, "p95_ms": queries["requests"]})

    measurement = measure(client, queries)

    assert measurement.canary.error_ratio == pytest.approx(0.1, rel=0.02)  # two queries: two instants
    assert measurement.canary.p95_ms is None
    assert measurement.canary.notes == {"p95_ms": "2 series, expected one"}
    assert judge(measurement, THRESHOLDS).result == "fail"  # 10% errors: the ceiling is decided without p95


def test_an_override_prometheus_rejects_is_a_usage_error(prom: PromTest, client: PrometheusClient) -> None:
    queries = queries_for(prom.service, WINDOW, {"p95_ms": "histogram_quantile(0.95, {track}"})
    with pytest.raises(UsageError, match="parse error"):
        measure(client, queries)
