"""httpx for integrations: clients that carry the trace context, and how their failures read.

:func:`client` makes an ``httpx.Client`` with the invocation's ``traceparent`` on every request,
debug logs and sane timeouts. :class:`HttpClassifier` is the retry loop's
(:mod:`opsctl.integrations.retry`) reading of ``httpx`` *and* ``httpx2`` (the ``pagerduty``
client's fork, with the same exception classes): it goes by duck typing and class names, so
neither library is imported here, and importing this module stays cheap.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsctl import tracing
from opsctl.integrations.retry import Failure, truncate

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("opsctl.http")
_HTTPX_MODULES = ("httpx", "httpx2")


def _inject(request: httpx.Request) -> None:
    request.headers["traceparent"] = tracing.traceparent()
    log.debug("%s %s", request.method, request.url.copy_with(query=None))


def _record(response: httpx.Response) -> None:
    log.debug("%s %s -> %s", response.request.method, response.request.url.copy_with(query=None), response.status_code)


def client(**kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` that carries the invocation's ``traceparent`` header."""
    import httpx

    hooks = kwargs.pop("event_hooks", {})
    hooks.setdefault("request", []).append(_inject)
    hooks.setdefault("response", []).append(_record)
    kwargs.setdefault("timeout", httpx.Timeout(10.0, connect=5.0))
    return httpx.Client(event_hooks=hooks, **kwargs)


# ----------------------------------------------------------------------------------------
# Failures of httpx / httpx2 requests
# ----------------------------------------------------------------------------------------


def parse_seconds(value: str | None, *, allow_date: bool, wall_clock: Callable[[], float] = time.time) -> float | None:
    """Seconds from a ``Retry-After``/``ratelimit-reset`` value (a number or, if allowed, an HTTP date)."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        if not allow_date:
            return None
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - wall_clock()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def status_text(response: Any) -> str:
    """``503 Service Unavailable`` for an httpx/httpx2 response."""
    reason = getattr(response, "reason_phrase", "")
    return f"{response.status_code} {reason}" if reason else str(response.status_code)


def _chain(exc: BaseException, *, implicit: bool) -> list[BaseException]:
    """``exc`` and its causes (``raise … from``), and with ``implicit`` the exceptions it arose during."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen) and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or (current.__context__ if implicit else None)
    return seen


def _httpx_names(exc: BaseException) -> set[str] | None:
    """The class names of an httpx/httpx2 exception (both libraries share them), else None."""
    if type(exc).__module__.split(".")[0] not in _HTTPX_MODULES:
        return None
    return {cls.__name__ for cls in type(exc).__mro__}


def _is_tls_verification(exc: BaseException) -> bool:
    return any(
        isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e)
        for e in _chain(exc, implicit=True)
    )


class HttpClassifier:
    """Failures of ``httpx`` and ``httpx2`` requests: network errors, 429 and 5xx answers.

    An exception is looked for along its ``__cause__`` chain, so a client's wrapper around an
    httpx error (``pagerduty.Error``, raised ``from`` it) is understood too. ``detail`` adds the server's own words
    to a 5xx problem; ``wall_clock`` turns a ``Retry-After`` HTTP date into seconds.
    """

    def __init__(
        self, *, detail: Callable[[Any], str] | None = None, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._detail = detail
        self._wall_clock = wall_clock

    def error(self, exc: Exception, timeout: float) -> Failure | None:
        for cause in _chain(exc, implicit=False):  # a bug raised while handling one is not a network error
            names = _httpx_names(cause)
            if names is not None and "TransportError" in names:
                return self._network(cause, names, timeout)
        return None

    @staticmethod
    def _network(exc: BaseException, names: set[str], timeout: float) -> Failure:
        detail = truncate(str(exc)) or type(exc).__name__

        def lost(problem: str) -> Failure:
            return Failure(problem, "network", sent=False)

        def maybe_sent(problem: str) -> Failure:
            return Failure(problem, "network", sent=True)

        if "LocalProtocolError" in names or "UnsupportedProtocol" in names:
            # Never the exception's text: it quotes the offending header value, the token.
            return Failure(f"the request could not be sent ({type(exc).__name__})", "request", sent=False, retry=False)
        if _is_tls_verification(exc):
            return Failure(f"TLS certificate verification failed ({detail})", "tls", sent=False, retry=False)
        if "ConnectTimeout" in names:
            return lost(f"connecting timed out after {timeout:.1f}s")
        if "PoolTimeout" in names:
            return lost(f"no free connection within {timeout:.1f}s")
        if "ConnectError" in names or "ProxyError" in names:
            return lost("connection refused" if "refused" in detail.lower() else f"cannot connect ({detail})")
        if "ReadTimeout" in names:
            return maybe_sent(f"no answer within {timeout:.1f}s")
        if "WriteTimeout" in names:
            return maybe_sent(f"sending the request timed out after {timeout:.1f}s")
        if "TimeoutException" in names:
            return maybe_sent(f"timed out after {timeout:.1f}s")
        if names & {"ReadError", "WriteError", "RemoteProtocolError"}:
            return maybe_sent(f"connection dropped before an answer ({detail})")
        return maybe_sent(f"network error ({type(exc).__name__}: {detail})")

    def answer(self, response: Any) -> Failure | None:
        status = int(response.status_code)
        if status == 429:
            headers = response.headers
            wait = parse_seconds(headers.get("retry-after"), allow_date=True, wall_clock=self._wall_clock)
            if wait is None:
                wait = parse_seconds(headers.get("ratelimit-reset"), allow_date=False)
            return Failure("rate limited (429)", "rate_limited", sent=False, answered=True, wait=wait)
        if status >= 500:
            extra = self._detail(response) if self._detail is not None else ""
            return Failure(f"HTTP {status_text(response)}{extra}", "server_error", sent=True, answered=True)
        return None


HTTP = HttpClassifier()
