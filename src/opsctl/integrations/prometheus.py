"""Prometheus HTTP API: instant queries, through opsctl's shared retry loop.

:class:`PrometheusClient` asks ``/api/v1/query`` and hands back :class:`Sample` values with
Prometheus' special values ("NaN", "+Inf", "-Inf") as None: a canary judged on a 0/0 must read
"unknown", never a number. Each query runs under one time ``budget`` with retries of 5xx and
network errors (a query is a read: always safe to repeat). A query the server rejects (400 bad
data, 422 cannot be executed) is the config's fault: :class:`~opsctl.errors.UsageError` with
Prometheus' own words; everything else that fails is :class:`~opsctl.errors.UpstreamError`.

The CA bundle is given to httpx as an SSL context, never as a path left to the environment
(``SSL_CERT_FILE`` would win over it). Answers are read uncompressed up to 8 MiB, and one
attempt ends at its timeout even against a server that trickles bytes. A naive ``at`` is taken
as UTC. ``httpx`` is imported on first use.
"""

from __future__ import annotations

import json
import logging
import math
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from opsctl import redact
from opsctl.errors import UpstreamError, UsageError
from opsctl.integrations.http import HttpClassifier, client, status_text
from opsctl.integrations.retry import Retrier, truncate

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("opsctl.prometheus")

MAX_ANSWER = 8 * 1024 * 1024  # bytes of one answer: more is a query that selects far too many series
_URL_HINT = "check integrations.prometheus.url"


@dataclass(frozen=True)
class Sample:
    """One series of an instant query's result; ``value`` None for NaN and ±Inf."""

    labels: dict[str, str]
    value: float | None


@dataclass(frozen=True)
class _Answer:
    """What one attempt got: the status line, headers and (bounded) body; read by the retry loop's classifier."""

    status_code: int
    reason_phrase: str
    headers: Any
    body: bytes

    def error_text(self) -> str:
        """Prometheus' ``error`` field, else the start of the body."""
        try:
            data = json.loads(self.body)
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                return truncate(data["error"])
        except (ValueError, RecursionError):
            pass
        return truncate(self.body[:300].decode("utf-8", "replace"))


def _number(raw: Any) -> float | None:
    """A sample value as Prometheus writes it (a string); None for NaN and ±Inf."""
    if not isinstance(raw, str):
        raise ValueError(f"a value that is not a string: {truncate(repr(raw))}")
    value = float(raw)
    return value if math.isfinite(value) else None


class PrometheusClient:
    """Instant queries against one Prometheus. Not for concurrent use from several threads."""

    def __init__(
        self,
        url: str,
        *,
        ca_bundle: str | None = None,
        request_timeout: float = 5.0,
        budget: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        base = (url or "").strip().rstrip("/")
        parts = urlsplit(base)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"integrations.prometheus.url must be an http(s):// URL, got {redact.redact(repr(url))}",
                "e.g. http://prometheus.monitoring:9090",
            )
        if budget <= 0 or request_timeout <= 0:
            raise UsageError(f"Prometheus timeouts must be positive, got {budget}s and {request_timeout}s")
        self.url = base
        self.shown_url = redact.redact(base)
        self.budget = float(budget)
        self._verify = self._tls(ca_bundle)
        self._monotonic = monotonic
        self._client: httpx.Client | None = None
        self._retrier = Retrier(
            f"Prometheus at {self.shown_url}",
            request_timeout=float(request_timeout),
            classifier=HttpClassifier(detail=lambda answer: f": {answer.error_text()}"),
            sleep=sleep,
            monotonic=monotonic,
            hint="check network access to it and integrations.prometheus.url;"
            " integrations.prometheus.timeout sets the time opsctl waits",
            hints={"tls": "set integrations.prometheus.ca_bundle to the CA that signed its certificate"},
            log=log,
        )

    @staticmethod
    def _tls(ca_bundle: str | None) -> ssl.SSLContext | bool:
        if not ca_bundle:
            return True
        path = Path(ca_bundle).expanduser()
        try:
            return ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise UsageError(
                f"integrations.prometheus.ca_bundle: {path} is not a readable PEM CA bundle ({truncate(str(exc))})",
                "point it at a PEM file with the CA certificates to trust",
            ) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.shown_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        http, self._client = self._client, None
        if http is not None:
            http.close()

    # -- queries ---------------------------------------------------------------------------

    def value(self, promql: str, at: datetime | None = None) -> float | None:
        """The query's single number; None when it gives nothing, NaN/±Inf, or more than one series."""
        samples = self.query(promql, at)
        return samples[0].value if len(samples) == 1 else None

    def query(self, promql: str, at: datetime | None = None) -> list[Sample]:
        """An instant query (at ``at``, else the server's now): one :class:`Sample` per series, or one for a scalar."""
        params = {"query": promql}
        if at is not None:
            moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
            params["time"] = f"{moment.timestamp():.3f}"
        answer = self._retrier.call(
            lambda timeout: self._send(params, timeout), "query", self._retrier.budget(self.budget), idempotent=True
        )
        if answer.status_code in (400, 422):
            verb = "rejected" if answer.status_code == 400 else "could not evaluate"
            raise UsageError(
                f"Prometheus {verb} the query {truncate(promql)!r}: {answer.error_text()}",
                "check the service's prometheus.queries",
            )
        if answer.status_code != 200:
            raise UpstreamError(
                redact.redact(f"Prometheus at {self.shown_url} answered {status_text(answer)}: {answer.error_text()}"),
                f"{_URL_HINT} (the base URL, without /api/v1) and any proxy in front of it",
            )
        return self._samples(answer.body, promql)

    def _samples(self, body: bytes, promql: str) -> list[Sample]:
        try:
            document = json.loads(body)
            if not isinstance(document, dict) or document.get("status") != "success":
                raise ValueError("no successful answer")
            data = document["data"]
            kind, result = data["resultType"], data["result"]
            if kind == "scalar":
                return [Sample({}, _number(result[1]))]
            if kind == "vector":
                return [
                    Sample({str(k): str(v) for k, v in item["metric"].items()}, _number(item["value"][1]))
                    for item in result
                ]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
            raise UpstreamError(
                redact.redact(f"Prometheus at {self.shown_url} answered something that is not its query API ({exc})"),
                _URL_HINT,
            ) from None
        raise UsageError(
            f"the query {truncate(promql)!r} gives a {kind}, not a number per series",
            "wrap the range selector in rate(), increase() or *_over_time()" if kind == "matrix" else None,
        )

    def _send(self, params: dict[str, str], timeout: float) -> _Answer:
        """One attempt, ended at ``timeout`` (a ReadTimeout the retry loop understands) and at MAX_ANSWER bytes."""
        import httpx

        if self._client is None:
            # identity: the size bound counts the bytes as sent, and no small gzip can expand past it
            headers = {"Accept-Encoding": "identity", "Accept": "application/json"}
            self._client = client(verify=self._verify, follow_redirects=False, headers=headers)
        began = self._monotonic()
        with self._client.stream(
            "GET", f"{self.url}/api/v1/query", params=params, timeout=httpx.Timeout(timeout)
        ) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > MAX_ANSWER:
                    raise UsageError(
                        f"Prometheus' answer to {truncate(params['query'])!r} exceeds {MAX_ANSWER // 1048576} MiB",
                        "aggregate the query (sum by …) so that it gives one series per track",
                    )
                chunks.append(chunk)
                if self._monotonic() - began > timeout:
                    raise httpx.ReadTimeout(f"the answer took longer than {timeout:.1f}s")
            return _Answer(response.status_code, response.reason_phrase, response.headers, b"".join(chunks))
