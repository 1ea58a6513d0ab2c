"""The test exporter itself (tests/fakes/exporter.py), on an injected clock: the live Prometheus
tests rely on its counters growing the way real ones do."""

from __future__ import annotations

import re

import pytest

from tests.fakes.exporter import BUCKETS, Exporter, cumulative_shares

LINE = re.compile(r"^(?P<name>\w+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scrape(exporter: Exporter) -> dict[tuple[str, str], float]:
    """(metric name, labels text) -> value, checking every line is well formed."""
    samples = {}
    for line in exporter.render().splitlines():
        if line.startswith("#"):
            continue
        match = LINE.match(line)
        assert match, line
        samples[(match["name"], match["labels"])] = float(match["value"])
    return samples


def count(samples: dict[tuple[str, str], float], track: str, code: str, service: str = "s") -> float | None:
    return samples.get(("http_request_duration_seconds_count", f'service="{service}",track="{track}",code="{code}"'))


def test_counters_grow_with_time_and_a_rate_change_shows_at_once():
    clock = Clock()
    exporter = Exporter(clock)
    exporter.set("s", "canary", rps=10)
    assert scrape(exporter) == {}  # nothing counted yet: no series
    clock.now += 2
    assert count(scrape(exporter), "canary", "200") == 20
    exporter.set("s", "canary", rps=100)
    clock.now += 1
    assert count(scrape(exporter), "canary", "200") == 120
    exporter.set("s", "canary", rps=0)
    clock.now += 50
    assert count(scrape(exporter), "canary", "200") == 120  # stays, stops growing


def test_errors_get_their_series_once_there_are_errors():
    clock = Clock()
    exporter = Exporter(clock)
    exporter.set("s", "stable", rps=10)
    clock.now += 1
    assert count(scrape(exporter), "stable", "500") is None
    exporter.set("s", "stable", error_ratio=0.25)
    clock.now += 4
    samples = scrape(exporter)
    assert (count(samples, "stable", "200"), count(samples, "stable", "500")) == (40, 10)


def test_buckets_are_cumulative_and_end_at_the_count():
    clock = Clock()
    exporter = Exporter(clock)
    exporter.set("s", "canary", rps=10, latency_ms=800)
    exporter.set("s", "stable", rps=10, latency_ms=30)
    clock.now += 10
    samples = scrape(exporter)
    for track in ("canary", "stable"):
        labels = f'service="s",track="{track}",code="200"'
        bounds = [f"{b:g}" for b in BUCKETS] + ["+Inf"]
        buckets = [samples[("http_request_duration_seconds_bucket", f'{labels},le="{b}"')] for b in bounds]
        assert buckets == sorted(buckets)
        assert buckets[-1] == count(samples, track, "200") == 100


@pytest.mark.parametrize("latency_ms", [5, 30, 99, 100, 120, 480, 500, 800, 1000, 9999, 10000])
def test_the_interpolated_p95_is_the_latency_asked_for(latency_ms):
    """Prometheus' histogram_quantile interpolates linearly inside the bucket the rank falls in."""
    shares = [*cumulative_shares(latency_ms / 1000), 1.0]
    bounds = [0.0, *BUCKETS]
    i = next(n for n, share in enumerate(shares) if share >= 0.95)
    below = shares[i - 1] if i else 0.0
    p95 = bounds[i] + (bounds[i + 1] - bounds[i]) * (0.95 - below) / (shares[i] - below)
    assert p95 * 1000 == pytest.approx(latency_ms)


def test_stop_removes_the_series_and_other_services_stay():
    clock = Clock()
    exporter = Exporter(clock)
    exporter.set("s", "canary", rps=10)
    exporter.set("t", "canary", rps=10)
    clock.now += 1
    exporter.stop("s", "canary")
    samples = scrape(exporter)
    assert count(samples, "canary", "200") is None
    assert count(samples, "canary", "200", service="t") == 10


@pytest.mark.parametrize(
    "change", [{"track": "blue"}, {"rps": -1}, {"error_ratio": 1.5}, {"latency_ms": 2}, {"latency_ms": 20_000}]
)
def test_bad_settings_are_refused(change):
    arguments = {"track": "canary", **change}
    with pytest.raises(ValueError):
        Exporter().set("s", arguments.pop("track"), **arguments)
