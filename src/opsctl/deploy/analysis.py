"""Canary analysis: measure both tracks in Prometheus, then judge the canary against limits and stable.

:func:`queries_for` gives the PromQL per metric (templates still holding ``{track}``): the
defaults read the standard export ``http_request_duration_seconds{service, track, code}``, a
service's ``prometheus.queries`` may replace any of them (``requests``, ``error_ratio`` or
``errors``, ``p95_ms``; other named queries are not the analysis'). :func:`measure` runs them
for ``canary`` and ``stable``; :func:`judge` is pure and decides.

The canary passes only when it is inside the absolute limits (5xx ratio under the ceiling, p95
under the tier's SLA) AND not significantly worse than stable, where worse means over stable
times the factor AND over stable plus the minimum difference: on a tiny baseline a doubling
is noise, and on a big one a small factor is not. Unknown values (no data, NaN, too few
requests on either track) make a check inconclusive, never a pass; any failed check fails
the verdict, else any inconclusive one makes it inconclusive.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from opsctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opsctl.integrations.prometheus import Sample

METRIC = "http_request_duration_seconds"
TRACKS = ("canary", "stable")
QUERY_KEYS = ("requests", "error_ratio", "errors", "p95_ms")
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
_WINDOW = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+", re.ASCII)


class _Querier(Protocol):
    def query(self, promql: str) -> list[Sample]: ...


@dataclass(frozen=True)
class Thresholds:
    max_error_ratio: float = 0.01
    error_ratio_factor: float = 2.0
    error_ratio_min_diff: float = 0.005
    p95_limit_ms: float | None = None  # the tier's p95 SLA; None: the tier has none
    latency_factor: float = 1.5
    latency_min_diff_ms: float = 50.0
    min_requests: int = 20


@dataclass(frozen=True)
class TrackMeasurement:
    """One track over the window; None where unknown, with the reason in ``notes``."""

    requests: float | None
    error_ratio: float | None
    p95_ms: float | None
    notes: dict[str, str] = field(default_factory=dict)  # metric -> "no data", "NaN", "2 series, expected one"


@dataclass(frozen=True)
class Measurement:
    canary: TrackMeasurement
    stable: TrackMeasurement


@dataclass(frozen=True)
class Check:
    metric: str  # requests, error_ratio, error_ratio_vs_stable, p95_ms, p95_ms_vs_stable
    canary: float | None
    stable: float | None
    limit: float | None  # the canary's bound (the minimum for requests); None: no limit
    result: str  # pass | fail | inconclusive
    reason: str


@dataclass(frozen=True)
class Verdict:
    result: str
    checks: tuple[Check, ...]
    measurement: Measurement

    @property
    def reason(self) -> str:
        """Why: the failed checks, else the inconclusive ones, else all."""
        picked = [c for c in self.checks if c.result == self.result] or list(self.checks)
        return "; ".join(c.reason for c in picked)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (unknown values are None, never NaN) for run records and ``deploy status -o json``."""
        return {
            "result": self.result,
            "reason": self.reason,
            "checks": [asdict(c) for c in self.checks],
            **{track: asdict(getattr(self.measurement, track)) for track in TRACKS},
        }


# ----------------------------------------------------------------------------------------
# Queries
# ----------------------------------------------------------------------------------------


def _label_value(text: str) -> str:
    """Text safe inside a PromQL double-quoted string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _window(window: str | timedelta) -> str:
    if isinstance(window, timedelta):
        seconds = int(window.total_seconds())
        if seconds < 1:
            raise UsageError(f"the analysis window must be at least 1s, got {window}")
        return f"{seconds}s"
    if not _WINDOW.fullmatch(window):
        raise UsageError(f"the analysis window must be a Prometheus duration like 1m or 90s, got {window[:40]!r}")
    return window


def default_queries(service: str, window: str | timedelta) -> dict[str, str]:
    """The standard queries for ``service`` over ``window``, each holding ``{track}``.

    5xx share of all requests (no 5xx series yet counts as 0), p95 in ms from the histogram,
    and the requests seen in the window. Each sums to one series per track.
    """
    w = _window(window)
    selector = f'service="{_label_value(service)}",track="{{track}}"'
    count = f"{METRIC}_count{{{selector}}}"
    errors = f'{METRIC}_count{{{selector},code=~"5.."}}'
    return {
        "requests": f"sum(increase({count}[{w}]))",
        "error_ratio": f"(sum(rate({errors}[{w}])) or vector(0)) / sum(rate({count}[{w}]))",
        "p95_ms": f"1000 * histogram_quantile(0.95, sum by (le) (rate({METRIC}_bucket{{{selector}}}[{w}])))",
    }


def queries_for(service: str, window: str | timedelta, overrides: Mapping[str, str]) -> dict[str, str]:
    """The defaults with a service's overrides; ``{service}`` and ``{window}`` filled in, ``{track}`` kept.

    ``errors`` (5xx count in the window) without ``error_ratio`` makes the ratio errors / requests;
    a count that gives nothing is unknown, not 0 (end it in ``or vector(0)`` when the 5xx series may
    not exist yet). An override without ``{track}`` would measure canary and stable alike: refused.
    """
    queries = default_queries(service, window)
    w = _window(window)
    for key in QUERY_KEYS:
        text = overrides.get(key)
        if text is None:
            continue
        if "{track}" not in text:
            raise UsageError(
                f"services.{service}.prometheus.queries.{key} has no {{track}} placeholder",
                'select the track in it, e.g. track="{track}", so that canary and stable are measured apart',
            )
        queries[key] = text.replace("{service}", _label_value(service)).replace("{window}", w)
    if "errors" in overrides and "error_ratio" not in overrides:
        del queries["error_ratio"]
    return queries


# ----------------------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------------------


def _one(samples: list[Sample]) -> tuple[float | None, str]:
    if not samples:
        return None, "no data"
    if len(samples) > 1:
        return None, f"{len(samples)} series, expected one"
    value = samples[0].value
    return (value, "") if value is not None and math.isfinite(value) else (None, "NaN")


def measure(prom: _Querier, queries: Mapping[str, str]) -> Measurement:
    """Run the queries for both tracks (UpstreamError/UsageError from the client propagate)."""
    tracks: dict[str, TrackMeasurement] = {}
    for track in TRACKS:
        values: dict[str, float | None] = {}
        notes: dict[str, str] = {}
        for key, template in queries.items():
            values[key], note = _one(prom.query(template.replace("{track}", track)))
            if note:
                notes[key] = note
        if "error_ratio" not in queries and "errors" in queries:
            errors, requests = values.get("errors"), values.get("requests")
            values["error_ratio"] = errors / requests if errors is not None and requests else None
            if values["error_ratio"] is None:
                notes.setdefault("error_ratio", notes.get("errors") or "no requests")
        tracks[track] = TrackMeasurement(values.get("requests"), values.get("error_ratio"), values.get("p95_ms"), notes)
    return Measurement(tracks["canary"], tracks["stable"])


# ----------------------------------------------------------------------------------------
# Judging
# ----------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f} ms"


def _unknown(m: Measurement, metric: str, *, need_stable: bool, enough: dict[str, bool]) -> str | None:
    """Why a check cannot be decided, or None."""
    for track in TRACKS if need_stable else ("canary",):
        data: TrackMeasurement = getattr(m, track)
        if not enough[track]:
            return f"{metric}: too few {track} requests to judge"
        if getattr(data, metric) is None:
            return f"{metric}: no {track} value ({data.notes.get(metric, 'unknown')})"
    return None


def judge(measurement: Measurement, thresholds: Thresholds) -> Verdict:
    m, t = measurement, thresholds
    checks = [_requests_check(m, t)]
    enough = {track: (getattr(m, track).requests or 0) >= t.min_requests for track in TRACKS}
    rules = (
        ("error_ratio", _pct, t.max_error_ratio, t.error_ratio_factor, t.error_ratio_min_diff),
        ("p95_ms", _ms, t.p95_limit_ms, t.latency_factor, t.latency_min_diff_ms),
    )
    for metric, shown, ceiling, factor, min_diff in rules:
        canary, stable = getattr(m.canary, metric), getattr(m.stable, metric)
        checks.append(_absolute(m, metric, shown, ceiling, enough))
        why = _unknown(m, metric, need_stable=True, enough=enough)
        if why is not None:
            checks.append(Check(f"{metric}_vs_stable", canary, stable, None, INCONCLUSIVE, why))
            continue
        bound = max(stable * factor, stable + min_diff)
        worse = canary > bound
        reason = (
            f"{metric}: canary {shown(canary)} vs stable {shown(stable)}"
            f" {'is over' if worse else 'is within'} {factor:g}x and +{shown(min_diff)} ({shown(bound)})"
        )
        checks.append(Check(f"{metric}_vs_stable", canary, stable, bound, FAIL if worse else PASS, reason))
    results = {c.result for c in checks}
    result = FAIL if FAIL in results else INCONCLUSIVE if INCONCLUSIVE in results else PASS
    return Verdict(result, tuple(checks), measurement)


def _requests_check(m: Measurement, t: Thresholds) -> Check:
    canary, stable = m.canary.requests, m.stable.requests
    short = [
        f"{track} {'no data' if n is None else int(n)}"
        for track, n in (("canary", canary), ("stable", stable))
        if n is None or n < t.min_requests
    ]
    if short:
        reason = f"requests: too few in the window ({', '.join(short)}; at least {t.min_requests} each)"
        return Check("requests", canary, stable, t.min_requests, INCONCLUSIVE, reason)
    reason = f"requests: canary {canary:.0f}, stable {stable:.0f} in the window (at least {t.min_requests} each)"
    return Check("requests", canary, stable, t.min_requests, PASS, reason)


def _absolute(m: Measurement, metric: str, shown: Any, ceiling: float | None, enough: dict[str, bool]) -> Check:
    canary, stable = getattr(m.canary, metric), getattr(m.stable, metric)
    if ceiling is None:
        return Check(metric, canary, stable, None, PASS, f"{metric}: no limit for this tier")
    why = _unknown(m, metric, need_stable=False, enough=enough)
    if why is not None:
        return Check(metric, canary, stable, ceiling, INCONCLUSIVE, why)
    over = canary > ceiling
    reason = f"{metric}: canary {shown(canary)} {'is over' if over else 'is within'} the limit of {shown(ceiling)}"
    return Check(metric, canary, stable, ceiling, FAIL if over else PASS, reason)
