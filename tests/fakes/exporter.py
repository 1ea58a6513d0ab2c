"""A controllable exporter of ``http_request_duration_seconds`` for a real Prometheus to scrape.

It serves ``GET /metrics`` in the Prometheus text format (0.0.4): one histogram
(``_bucket{le=…}``, ``_sum``, ``_count``) per (service, track, code), labelled ``service``,
``track`` (stable|canary) and ``code`` (200, or 500 for the errors), as an application
instrumented by a Prometheus client library would. A test drives it per (service, track):

    exporter.set("svc-1", "canary", rps=50, error_ratio=0.3, latency_ms=800)
    exporter.stop("svc-1", "canary")        # the series disappear (Prometheus marks them stale)
    exporter.set("svc-1", "stable", rps=0)  # the series stay but stop growing (rates 0, ratios NaN)

Counters are computed at each scrape from the elapsed time times the current rate, on top of
what was counted before the last change, so they only grow and a change shows at the next
scrape. Requests are spread over the buckets so that Prometheus' ``histogram_quantile(0.95, …)``
(linear interpolation inside a bucket) gives ``latency_ms`` back exactly, for latencies from
the first bucket's bound (5 ms) to the last finite one (10 s); ``_sum`` counts every request
at ``latency_ms``. A code's series appear once it has a request (no 500 series until an error),
like a real client library. Thread-safe: the server answers scrapes from its own threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

METRIC = "http_request_duration_seconds"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds; then +Inf
TRACKS = ("stable", "canary")
OK_CODE = "200"
ERROR_CODE = "500"
QUANTILE = 0.95


def cumulative_shares(latency_s: float) -> list[float]:
    """The share of requests at or under each finite bucket bound, so that the interpolated p95 is ``latency_s``.

    With the p95 in bucket (lo, hi] at t = (latency - lo) / (hi - lo): when t <= 0.95, the bucket
    ends at 100% and starts at (0.95 - t) / (1 - t) (that share sits in the bucket below); when
    t > 0.95, nothing is below lo, 0.95 / t is in the bucket, the rest in the next one up.
    """
    if not BUCKETS[0] <= latency_s <= BUCKETS[-1]:
        raise ValueError(f"latency must be within {BUCKETS[0] * 1000:g}..{BUCKETS[-1] * 1000:g} ms")
    i = next(n for n, bound in enumerate(BUCKETS) if latency_s <= bound)
    lo = BUCKETS[i - 1] if i else 0.0
    t = (latency_s - lo) / (BUCKETS[i] - lo)
    below, at_hi = ((QUANTILE - t) / (1 - t), 1.0) if t <= QUANTILE else (0.0, QUANTILE / t)
    shares = []
    for n in range(len(BUCKETS)):
        if n < i - 1:
            shares.append(0.0)
        elif n == i - 1:
            shares.append(below)
        elif n == i:
            shares.append(at_hi)
        else:
            shares.append(1.0)
    return shares


@dataclass
class _Series:
    """One (service, track): its current traffic, and what was counted up to ``since``."""

    rps: float
    error_ratio: float
    latency_ms: float
    since: float
    counted: dict[str, list[float]] = field(default_factory=dict)  # code -> cumulative buckets (+Inf last)
    summed: dict[str, float] = field(default_factory=dict)  # code -> _sum

    def rates(self) -> dict[str, float]:
        return {OK_CODE: self.rps * (1 - self.error_ratio), ERROR_CODE: self.rps * self.error_ratio}

    def totals(self, now: float) -> dict[str, tuple[list[float], float]]:
        """code -> (cumulative bucket counts with +Inf last, sum) as of ``now``."""
        elapsed = max(0.0, now - self.since)
        shares = [*cumulative_shares(self.latency_ms / 1000), 1.0]
        out = {}
        for code, rate in self.rates().items():
            before = self.counted.get(code, [0.0] * len(shares))
            grown = elapsed * rate
            if before[-1] == 0 and grown == 0:
                continue  # no request with this code yet: no series, as a client library does
            buckets = [b + grown * s for b, s in zip(before, shares, strict=True)]
            out[code] = (buckets, self.summed.get(code, 0.0) + grown * self.latency_ms / 1000)
        return out

    def fold(self, now: float) -> None:
        """Count what the current traffic produced up to ``now``, before it changes."""
        for code, (buckets, total) in self.totals(now).items():
            self.counted[code] = buckets
            self.summed[code] = total
        self.since = now


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Exporter:
    """The exporter over real HTTP on 127.0.0.1 (a free port); ``clock`` is injectable for its own tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], _Series] = {}
        self.scrapes = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- control

    def set(
        self,
        service: str,
        track: str,
        *,
        rps: float | None = None,
        error_ratio: float | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Start or change the traffic of (service, track); what is not given stays (new: 20 rps, 0%, 50 ms)."""
        if track not in TRACKS:
            raise ValueError(f"track must be one of {TRACKS}")
        if rps is not None and rps < 0:
            raise ValueError("rps must be >= 0")
        if error_ratio is not None and not 0 <= error_ratio <= 1:
            raise ValueError("error_ratio must be within 0..1")
        if latency_ms is not None:
            cumulative_shares(latency_ms / 1000)  # validates the range
        with self._lock:
            now = self._clock()
            series = self._series.get((service, track))
            if series is None:
                series = self._series[(service, track)] = _Series(20.0, 0.0, 50.0, now)
            series.fold(now)
            series.rps = series.rps if rps is None else float(rps)
            series.error_ratio = series.error_ratio if error_ratio is None else float(error_ratio)
            series.latency_ms = series.latency_ms if latency_ms is None else float(latency_ms)

    def stop(self, service: str, track: str) -> None:
        """The (service, track) series disappear from the next scrape on (the pods are gone)."""
        with self._lock:
            self._series.pop((service, track), None)

    def render(self) -> str:
        """The ``/metrics`` page as of now."""
        with self._lock:
            now = self._clock()
            snapshot = [(key, series.totals(now)) for key, series in sorted(self._series.items())]
        lines = [f"# HELP {METRIC} Duration of HTTP requests.", f"# TYPE {METRIC} histogram"]
        for (service, track), codes in snapshot:
            for code, (buckets, total) in sorted(codes.items()):
                labels = f'service="{_label(service)}",track="{_label(track)}",code="{code}"'
                for bound, count in zip([*(f"{b:g}" for b in BUCKETS), "+Inf"], buckets, strict=True):
                    lines.append(f'{METRIC}_bucket{{{labels},le="{bound}"}} {count!r}')
                lines.append(f"{METRIC}_sum{{{labels}}} {total!r}")
                lines.append(f"{METRIC}_count{{{labels}}} {buckets[-1]!r}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------- server

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the scrape target."""
        if self._server is None:
            raise RuntimeError("the exporter is not running")
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def start(self) -> Self:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.render().encode()
                with exporter._lock:
                    exporter.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="exporter", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
