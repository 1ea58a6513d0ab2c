"""PagerDuty REST API v2 transport: the client, and the retrying loop every adapter call runs.

:class:`PagerDutyTransport`, the base of :class:`~opsctl.integrations.pagerduty.PagerDutyAdapter`,
checks the connection settings, builds the official ``pagerduty`` client (7.x, over ``httpx2``)
and sends through it with all of that client's own retrying switched off: it would retry 429
forever with its own sleeps and never retry a 5xx. Instead every call runs opsctl's own loop
under one total time ``budget`` (a :class:`Budget`):

* each attempt gets ``request_timeout`` seconds, capped by what is left of the budget;
* 429: wait ``Retry-After`` (or else ``ratelimit-reset``, or else a short backoff), but only
  when the wait fits in the remaining budget; otherwise give up at once;
* 5xx and network errors: short exponential backoff (0.5 s, 1 s, 2 s, ...), only for calls made
  as idempotent, after the caller's ``before_retry_after_ambiguity`` check (the create's look-up
  by key); other calls are retried only when nothing was processed (429, or a connection that
  never got established).

The loop hands every other answer back for the adapter to read. Its failures are
:class:`~opsctl.errors.UpstreamError` (exit 4) whose text never carries the token.
``import pagerduty``/``httpx2`` happen only inside functions so that ``opsctl --help`` stays fast.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from opsctl import redact, tracing
from opsctl.errors import UpstreamError, UsageError

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger("opsctl.pagerduty")

DEFAULT_BASE_URL = "https://api.pagerduty.com"

BACKOFF_INITIAL = 0.5  # seconds before the 2nd attempt after a 5xx / network error
BACKOFF_MAX = 4.0
MAX_ATTEMPTS = 10  # HTTP attempts per adapter call, whatever the budget says
MIN_ATTEMPT_TIME = 0.1  # an attempt with less time than this left is not worth starting
_TEXT_LIMIT = 300

TOKEN_HINT = "check integrations.pagerduty.token"
_NOT_RETRIED_HINT = "check the incident at PagerDuty before repeating: the first request may have been recorded"


# ----------------------------------------------------------------------------------------
# Internals: the budget, network failures, the client's logger
# ----------------------------------------------------------------------------------------


@dataclass
class Budget:
    """The time and attempts one adapter call may spend (shared by its nested look-ups)."""

    total: float
    monotonic: Callable[[], float]
    started: float = 0.0
    attempts: int = 0
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = self.monotonic()

    def elapsed(self) -> float:
        return max(0.0, self.monotonic() - self.started)

    def remaining(self) -> float:
        return self.total - self.elapsed()


class _NetworkFailure(Exception):
    """A request that got no HTTP answer. ``sent``: the request may have reached PagerDuty."""

    def __init__(self, problem: str, *, sent: bool, tls: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.sent = sent
        self.tls = tls


class _DebugLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The ``pagerduty`` client's own log, demoted to debug under ``opsctl.pagerduty.client``.

    The client logs at error level whenever it hands a failed response back, which is exactly
    what we ask it to do; opsctl reports the outcome itself.
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            kwargs.setdefault("stacklevel", 2)
            self.logger.log(logging.DEBUG, msg, *args, **kwargs)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def _parse_seconds(value: str | None, *, allow_date: bool) -> float | None:
    """Seconds from a ``Retry-After``/``ratelimit-reset`` value (number or, for Retry-After, an HTTP date)."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        if not allow_date:
            return None
        try:
            when = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def _is_tls_verification(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _describe_transport(exc: Exception, timeout: float) -> _NetworkFailure:
    import httpx2

    detail = truncate(str(exc)) or type(exc).__name__
    if _is_tls_verification(exc):
        return _NetworkFailure(f"TLS certificate verification failed ({detail})", sent=False, tls=True)
    if isinstance(exc, httpx2.ConnectTimeout):
        return _NetworkFailure(f"connecting timed out after {timeout:.1f}s", sent=False)
    if isinstance(exc, httpx2.PoolTimeout):
        return _NetworkFailure(f"no free connection within {timeout:.1f}s", sent=False)
    if isinstance(exc, httpx2.ConnectError | httpx2.ProxyError):
        lowered = detail.lower()
        if "refused" in lowered:
            return _NetworkFailure("connection refused", sent=False)
        return _NetworkFailure(f"cannot connect ({detail})", sent=False)
    if isinstance(exc, httpx2.ReadTimeout):
        return _NetworkFailure(f"no answer within {timeout:.1f}s", sent=True)
    if isinstance(exc, httpx2.WriteTimeout):
        return _NetworkFailure(f"sending the request timed out after {timeout:.1f}s", sent=True)
    if isinstance(exc, httpx2.TimeoutException):
        return _NetworkFailure(f"timed out after {timeout:.1f}s", sent=True)
    if isinstance(exc, httpx2.ReadError | httpx2.WriteError | httpx2.RemoteProtocolError):
        return _NetworkFailure(f"connection dropped before an answer ({detail})", sent=True)
    return _NetworkFailure(f"network error ({type(exc).__name__}: {detail})", sent=True)


def status_text(response: httpx2.Response) -> str:
    reason = response.reason_phrase
    return f"{response.status_code} {reason}" if reason else str(response.status_code)


# ----------------------------------------------------------------------------------------
# The transport
# ----------------------------------------------------------------------------------------


class PagerDutyTransport:
    """Settings, client and retrying loop beneath the PagerDuty adapter. Not for concurrent use from several threads."""

    def __init__(
        self,
        *,
        token: str,
        from_email: str,
        base_url: str = DEFAULT_BASE_URL,
        ca_bundle: str | None = None,
        budget: float = 30.0,
        request_timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        redact.register(token)
        if not token or not token.strip():
            raise UsageError("integrations.pagerduty.token resolved to an empty value", TOKEN_HINT)
        if not from_email or "@" not in from_email:
            raise UsageError(
                f"integrations.pagerduty.from must be an email address, got {from_email!r}",
                "set it to the email of the PagerDuty user opsctl acts as",
            )
        base = (base_url or "").strip().rstrip("/")
        parts = urlsplit(base)
        if parts.scheme.lower() != "https" or not parts.netloc:
            raise UsageError(
                f"integrations.pagerduty.base_url must be an https:// URL, got {redact.redact(base_url)!r}",
                f"use {DEFAULT_BASE_URL} (or https://api.eu.pagerduty.com); PagerDuty's client only speaks https",
            )
        if not budget or budget <= 0:
            raise UsageError(f"integrations.pagerduty.timeout must be positive, got {budget}s", "use e.g. 30s")
        if request_timeout <= 0:
            raise UsageError(f"the PagerDuty request timeout must be positive, got {request_timeout}s")

        self.base_url = base
        self.from_email = from_email.strip()
        self.budget = float(budget)
        self.request_timeout = float(request_timeout)
        self._sleep = sleep
        self._monotonic = monotonic
        self._verify = self._tls_context(ca_bundle)
        self._ca_bundle = ca_bundle
        self._client = self._build_client(token)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, from_email={self.from_email!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- construction ----------------------------------------------------------------------

    @staticmethod
    def _tls_context(ca_bundle: str | None) -> ssl.SSLContext | bool:
        if not ca_bundle:
            return True
        path = Path(ca_bundle).expanduser()
        if not path.is_file():
            raise UsageError(
                f"integrations.pagerduty.ca_bundle: {path} does not exist",
                "point it at a PEM file with the CA certificates to trust, or remove it",
            )
        try:
            return ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise UsageError(
                f"integrations.pagerduty.ca_bundle: {path} is not a usable PEM CA bundle ({exc})",
                "point it at a PEM file with the CA certificates to trust",
            ) from None

    def _build_client(self, token: str) -> Any:
        import pagerduty

        from opsctl import __version__

        client = pagerduty.RestApiV2Client(token, base_url=self.base_url, verify=self._verify)
        # Hand back every error status at once: with a retry count for each status and a total
        # allowance below zero, its loop returns the first response it gets (no sleeping, no
        # 401 exception); network errors are raised at once (no second network attempt).
        client.retry = dict.fromkeys(range(400, 600), 1)
        client.max_http_attempts = -1
        client.max_network_attempts = 0
        client.sleep_timer = 0
        client.log = _DebugLog(logging.getLogger("opsctl.pagerduty.client"), {})  # type: ignore[assignment]  # duck-typed
        self._user_agent = f"opsctl/{__version__} {client.user_agent}"
        return client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- the loop --------------------------------------------------------------------------

    def _new_budget(self) -> Budget:
        return Budget(self.budget, self._monotonic)

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None,
        params: dict[str, Any] | None,
        timeout: float,
    ) -> httpx2.Response:
        import httpx2
        import pagerduty

        if self._client is None:
            raise UpstreamError("the PagerDuty adapter is closed")
        self._client.timeout = httpx2.Timeout(timeout)
        headers = {"traceparent": tracing.traceparent(), "User-Agent": self._user_agent}
        if method != "GET":
            headers["From"] = self.from_email
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        if params:
            kwargs["params"] = params
        try:
            response: httpx2.Response = self._client.request(method, path, **kwargs)
        except httpx2.TransportError as exc:
            raise _describe_transport(exc, timeout) from exc
        except pagerduty.Error as exc:
            cause = exc.__cause__
            if isinstance(cause, httpx2.TransportError):
                raise _describe_transport(cause, timeout) from cause
            if isinstance(exc.response, httpx2.Response):
                return exc.response  # e.g. an unexpected redirect: reported by the caller
            raise UpstreamError(redact.redact(f"PagerDuty client error on {method} {path}: {exc}")) from None
        return response

    def _call(
        self,
        method: str,
        path: str,
        budget: Budget,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotent: bool,
        before_retry_after_ambiguity: Callable[[], None] | None = None,
    ) -> httpx2.Response:
        """Send until an answer that is not 429/5xx, within the budget; raise UpstreamError otherwise.

        Returns 2xx and 4xx (other than 429) answers for the caller to judge. A non-idempotent
        call is repeated only when PagerDuty surely did not process it.
        """
        attempt = 0
        lookup_pending = False
        while True:
            if lookup_pending and before_retry_after_ambiguity is not None:
                before_retry_after_ambiguity()  # raises to end the call when the work was done
                lookup_pending = False
            if budget.attempts >= MAX_ATTEMPTS:
                raise self._exhausted(budget)
            remaining = budget.remaining()
            if remaining < MIN_ATTEMPT_TIME:
                raise self._exhausted(budget)
            timeout = min(self.request_timeout, remaining)
            attempt += 1
            budget.attempts += 1
            began = self._monotonic()
            ambiguous = False
            try:
                with tracing.span():
                    response = self._send(method, path, body=body, params=params, timeout=timeout)
            except _NetworkFailure as failure:
                took = self._monotonic() - began
                budget.problems.append(failure.problem)
                log.debug("PagerDuty %s %s attempt %d: %s after %.2fs", method, path, attempt, failure.problem, took)
                if failure.tls:
                    raise UpstreamError(
                        f"PagerDuty at {self.base_url}: {failure.problem}",
                        "set integrations.pagerduty.ca_bundle to the CA that signed its certificate",
                    ) from None
                if failure.sent and not idempotent:
                    raise UpstreamError(
                        f"PagerDuty {method} {path} failed: {failure.problem}; not retried, it may have been processed",
                        _NOT_RETRIED_HINT,
                    ) from None
                ambiguous = failure.sent
                wait = self._backoff(attempt)
            else:
                took = self._monotonic() - began
                status = response.status_code
                log.debug("PagerDuty %s %s attempt %d: %s in %.2fs", method, path, attempt, status, took)
                if status == 429:
                    wait = self._rate_limit_wait(response, attempt)
                    budget.problems.append(f"rate limited (429), asked to wait {wait:g}s")
                elif status >= 500:
                    problem = f"HTTP {status_text(response)}"
                    budget.problems.append(problem)
                    if not idempotent:
                        raise UpstreamError(
                            f"PagerDuty answered {method} {path} with {problem}; not retried, it may have been processed",
                            _NOT_RETRIED_HINT,
                        )
                    ambiguous = True
                    wait = self._backoff(attempt)
                else:
                    return response
            left = budget.remaining()
            if wait + MIN_ATTEMPT_TIME > left or budget.attempts >= MAX_ATTEMPTS:
                log.debug(
                    "PagerDuty %s %s: giving up, a %.2fs wait does not fit the %.2fs left", method, path, wait, left
                )
                raise self._exhausted(budget, wait=wait, left=left)
            log.debug("PagerDuty %s %s: waiting %.2fs before attempt %d", method, path, wait, attempt + 1)
            if wait > 0:
                self._sleep(wait)
            lookup_pending = lookup_pending or ambiguous

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (attempt - 1)))

    def _rate_limit_wait(self, response: httpx2.Response, attempt: int) -> float:
        retry_after = _parse_seconds(response.headers.get("retry-after"), allow_date=True)
        if retry_after is not None:
            return retry_after
        reset = _parse_seconds(response.headers.get("ratelimit-reset"), allow_date=False)
        if reset is not None:
            return reset
        return self._backoff(attempt)

    def _exhausted(self, budget: Budget, *, wait: float | None = None, left: float | None = None) -> UpstreamError:
        problem = budget.problems[-1] if budget.problems else "no attempt could be made"
        if wait is not None and left is not None and wait + MIN_ATTEMPT_TIME > left:
            problem += f" (a {wait:g}s wait does not fit the {max(left, 0.0):.1f}s left of the {self.budget:g}s budget)"
        message = (
            f"PagerDuty unreachable after {_plural(budget.attempts, 'attempt')} in {budget.elapsed():.1f}s: {problem}"
        )
        hint = (
            f"check network access to {self.base_url} and https://status.pagerduty.com; "
            "integrations.pagerduty.timeout sets the time opsctl waits"
        )
        return UpstreamError(redact.redact(message), hint)
