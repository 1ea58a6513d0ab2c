"""Canary analysis: the queries it builds and how it judges (pure; the live runs are in
tests/integration/test_analysis_live.py)."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import timedelta

import pytest

from opsctl.deploy.analysis import (
    Check,
    Measurement,
    Thresholds,
    TrackMeasurement,
    default_queries,
    judge,
    queries_for,
)
from opsctl.errors import UsageError

T = Thresholds(
    max_error_ratio=0.01,
    error_ratio_factor=2.0,
    error_ratio_min_diff=0.005,
    p95_limit_ms=500,
    latency_factor=1.5,
    latency_min_diff_ms=50,
    min_requests=20,
)
METRICS = ["requests", "error_ratio", "error_ratio_vs_stable", "p95_ms", "p95_ms_vs_stable"]


def track(
    requests: float | None = 1000,
    error_ratio: float | None = 0.001,
    p95_ms: float | None = 120,
    notes: dict[str, str] | None = None,
) -> TrackMeasurement:
    return TrackMeasurement(requests, error_ratio, p95_ms, notes or {})


def both(canary: TrackMeasurement | None = None, stable: TrackMeasurement | None = None) -> Measurement:
    return Measurement(canary or track(), stable or track())


def check(verdict, metric: str) -> Check:
    (found,) = [c for c in verdict.checks if c.metric == metric]
    return found


def results(verdict) -> dict[str, str]:
    return {c.metric: c.result for c in verdict.checks}


# ----------------------------------------------------------------------------- judging


def test_a_healthy_canary_passes_every_check():
    verdict = judge(both(track(error_ratio=0.002, p95_ms=130), track(error_ratio=0.001, p95_ms=120)), T)
    assert verdict.result == "pass"
    assert [c.metric for c in verdict.checks] == METRICS
    assert set(results(verdict).values()) == {"pass"}
    assert check(verdict, "requests") == Check("requests", 1000, 1000, 20, "pass", check(verdict, "requests").reason)
    errors = check(verdict, "error_ratio")
    assert (errors.canary, errors.stable, errors.limit) == (0.002, 0.001, 0.01)
    relative = check(verdict, "error_ratio_vs_stable")
    assert (relative.canary, relative.stable, relative.limit) == (0.002, 0.001, pytest.approx(0.006))
    latency = check(verdict, "p95_ms_vs_stable")
    assert (latency.canary, latency.stable, latency.limit) == (130, 120, 180)
    assert all(c.reason for c in verdict.checks)


def test_canary_over_the_absolute_error_ceiling_fails():
    verdict = judge(both(track(error_ratio=0.03)), T)
    assert verdict.result == "fail"
    failed = check(verdict, "error_ratio")
    assert (failed.result, failed.canary, failed.stable, failed.limit) == ("fail", 0.03, 0.001, 0.01)
    assert "3.00%" in failed.reason and "1.00%" in failed.reason
    assert failed.reason in verdict.reason


def test_canary_over_the_tiers_p95_sla_fails_even_when_close_to_stable():
    verdict = judge(both(track(p95_ms=520), track(p95_ms=490)), T)
    assert verdict.result == "fail"
    assert results(verdict) == {**dict.fromkeys(METRICS, "pass"), "p95_ms": "fail"}
    failed = check(verdict, "p95_ms")
    assert (failed.canary, failed.stable, failed.limit) == (520, 490, 500)
    assert "520 ms" in failed.reason and "500 ms" in failed.reason


@pytest.mark.parametrize(
    ("canary", "stable", "metric"),
    [
        (track(error_ratio=0.008), track(error_ratio=0.001), "error_ratio_vs_stable"),  # 8x and +0.7 points
        (track(p95_ms=300), track(p95_ms=100), "p95_ms_vs_stable"),  # 3x and +200 ms, under the SLA
    ],
)
def test_canary_much_worse_than_stable_relatively_and_absolutely_fails(canary, stable, metric):
    verdict = judge(both(canary, stable), T)
    assert verdict.result == "fail"
    assert [m for m, r in results(verdict).items() if r == "fail"] == [metric]
    assert "is over" in check(verdict, metric).reason


@pytest.mark.parametrize(
    ("canary", "stable"),
    [
        (track(error_ratio=0.001), track(error_ratio=0.0001)),  # 10x, but +0.09 points: noise on a tiny baseline
        (track(p95_ms=40), track(p95_ms=10)),  # 4x, but +30 ms
        (track(p95_ms=440), track(p95_ms=400)),  # +40 ms and only 1.1x
        (track(error_ratio=0.009), track(error_ratio=0.006)),  # +0.3 points, 1.5x
    ],
)
def test_worse_by_a_tiny_amount_or_a_small_factor_passes(canary, stable):
    verdict = judge(both(canary, stable), T)
    assert verdict.result == "pass", verdict.reason


@pytest.mark.parametrize(
    ("canary", "stable", "thresholds", "expected"),
    [
        (track(error_ratio=0.02), track(error_ratio=0.02), T, "fail"),  # both bad: the ceiling still holds
        (track(error_ratio=0.02), track(error_ratio=0.02), replace(T, max_error_ratio=0.05), "pass"),
        (track(p95_ms=600), track(p95_ms=620), T, "fail"),
        (track(p95_ms=600), track(p95_ms=620), replace(T, p95_limit_ms=None), "pass"),  # tier without p95 SLA
    ],
)
def test_stable_bad_and_canary_no_worse_passes_only_within_the_absolute_limits(canary, stable, thresholds, expected):
    verdict = judge(both(canary, stable), thresholds)
    assert verdict.result == expected, verdict.reason
    assert {check(verdict, "error_ratio_vs_stable").result, check(verdict, "p95_ms_vs_stable").result} == {"pass"}


def test_no_p95_limit_is_a_passing_check_without_a_limit():
    verdict = judge(both(), replace(T, p95_limit_ms=None))
    latency = check(verdict, "p95_ms")
    assert (latency.result, latency.limit) == ("pass", None)
    assert "no limit" in latency.reason


@pytest.mark.parametrize(
    ("canary", "stable", "words"),
    [
        (track(requests=None, error_ratio=None, p95_ms=None), track(), "canary no data"),
        (track(requests=5), track(), "canary 5"),
        (track(), track(requests=None), "stable no data"),
        (track(), track(requests=19.4), "stable 19"),
        (track(0, None, None, {"error_ratio": "NaN", "p95_ms": "NaN"}), track(), "canary 0"),
        (track(error_ratio=None, notes={"error_ratio": "NaN"}), track(), "no canary value (NaN)"),
        (track(p95_ms=None, notes={"p95_ms": "no data"}), track(), "no canary value (no data)"),
        (track(), track(error_ratio=None, notes={"error_ratio": "2 series, expected one"}), "2 series"),
        (track(), track(p95_ms=None), "no stable value (unknown)"),
    ],
)
def test_missing_nan_or_too_few_requests_is_inconclusive_with_a_reason(canary, stable, words):
    verdict = judge(both(canary, stable), T)
    assert verdict.result == "inconclusive"
    assert words in verdict.reason
    assert all(c.reason for c in verdict.checks if c.result == "inconclusive")


def test_too_few_canary_requests_is_inconclusive_even_with_a_bad_ratio():
    verdict = judge(both(track(requests=4, error_ratio=0.5)), T)
    assert verdict.result == "inconclusive"
    assert check(verdict, "error_ratio").result == "inconclusive"
    assert "too few canary requests" in check(verdict, "error_ratio").reason


def test_a_canary_over_its_limit_fails_even_when_stable_is_unknown():
    verdict = judge(both(track(error_ratio=0.3), track(requests=None, error_ratio=None, p95_ms=None)), T)
    assert verdict.result == "fail"
    assert check(verdict, "error_ratio").result == "fail"
    assert check(verdict, "error_ratio_vs_stable").result == "inconclusive"


def test_boundaries_are_inside():
    at_limits = track(requests=20, error_ratio=0.01, p95_ms=500)
    assert judge(both(at_limits, track(requests=20, error_ratio=0.005, p95_ms=450)), T).result == "pass"


def test_never_pass_on_unknown_or_thin_data_and_never_pass_outside_a_limit():
    """Every combination of these values: the invariants of the rules, whatever the rest."""
    requests = [None, 0, 19, 20, 5000]
    ratios = [None, 0.0, 0.001, 0.006, 0.011, 0.3]
    latencies = [None, 10, 100, 160, 499, 501, 900]
    for cr, sr, ce, se, cl, sl in itertools.product(requests, [None, 19, 20], ratios, ratios, latencies, latencies):
        verdict = judge(both(track(cr, ce, cl), track(sr, se, sl)), T)
        assert verdict.result in ("pass", "fail", "inconclusive")
        if verdict.result != "pass":
            continue
        assert None not in (cr, sr, ce, se, cl, sl) and min(cr, sr) >= 20
        assert ce <= 0.01 and cl <= 500
        assert not (ce > se * 2 and ce - se > 0.005)
        assert not (cl > sl * 1.5 and cl - sl > 50)


def test_the_verdict_is_json_ready():
    for verdict in (judge(both(), T), judge(both(track(None, None, None, {"requests": "no data"})), T)):
        data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
        assert data["result"] == verdict.result and data["reason"] == verdict.reason
        assert [c["metric"] for c in data["checks"]] == METRICS
        assert set(data["checks"][0]) == {"metric", "canary", "stable", "limit", "result", "reason"}
        assert set(data["canary"]) == {"requests", "error_ratio", "p95_ms", "notes"}
    assert data["canary"]["requests"] is None and data["canary"]["notes"] == {"requests": "no data"}


# ----------------------------------------------------------------------------- queries


def test_default_queries_select_the_service_and_keep_the_track():
    queries = default_queries("api", "2m")
    assert set(queries) == {"requests", "error_ratio", "p95_ms"}
    for text in queries.values():
        assert 'service="api",track="{track}"' in text and "[2m]" in text
    assert queries["requests"].startswith("sum(increase(http_request_duration_seconds_count{")
    assert 'code=~"5.."' in queries["error_ratio"] and "or vector(0)" in queries["error_ratio"]
    assert queries["p95_ms"].startswith("1000 * histogram_quantile(0.95, sum by (le) (rate(")


def test_a_service_name_cannot_break_out_of_its_label():
    text = default_queries('a"}) or vector(1) #\\', "1m")["requests"]
    assert 'service="a\\"}) or vector(1) #\\\\",track="{track}"' in text


@pytest.mark.parametrize(("window", "shown"), [(timedelta(minutes=1), "60s"), ("1m30s", "1m30s"), ("500ms", "500ms")])
def test_windows(window, shown):
    assert f"[{shown}]" in default_queries("api", window)["p95_ms"]


@pytest.mark.parametrize("window", ["", "5", "1 m", "1m]) or vector(1", "-1m", timedelta(0), "x" * 10_000])
def test_bad_windows_are_usage_errors(window):
    with pytest.raises(UsageError, match="window") as caught:
        queries_for("api", window, {})
    assert len(caught.value.message) < 200


def test_overrides_fill_service_and_window_keep_track_and_ignore_other_named_queries():
    overrides = {
        "p95_ms": 'histogram_quantile(0.95, sum by (le) (rate(lat_bucket{app="{service}",tr="{track}"}[{window}]))) * 1e3',
        "error_rate": "sum(rate(x[1m]))",  # a named query for dashboards, not the analysis'
        "latency_p95": "y",
    }
    queries = queries_for("api", "5m", overrides)
    assert set(queries) == {"requests", "error_ratio", "p95_ms"}
    assert queries["p95_ms"] == (
        'histogram_quantile(0.95, sum by (le) (rate(lat_bucket{app="api",tr="{track}"}[5m]))) * 1e3'
    )
    assert queries["requests"] == default_queries("api", "5m")["requests"]


def test_an_errors_override_replaces_the_ratio_unless_a_ratio_is_given_too():
    errors = 'sum(increase(e{svc="{service}",track="{track}"}[{window}]))'
    assert set(queries_for("api", "1m", {"errors": errors})) == {"requests", "errors", "p95_ms"}
    ratio = "r{track}"
    assert set(queries_for("api", "1m", {"errors": errors, "error_ratio": ratio})) == {
        "requests",
        "errors",
        "error_ratio",
        "p95_ms",
    }


def test_an_override_without_the_track_is_refused():
    with pytest.raises(UsageError, match=r"queries\.error_ratio has no \{track\}") as caught:
        queries_for("api", "1m", {"error_ratio": 'sum(rate(x{service="api",code=~"5.."}[1m]))'})
    assert "track" in (caught.value.hint or "")
