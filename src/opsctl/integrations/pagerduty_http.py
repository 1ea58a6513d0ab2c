"""PagerDuty REST API v2 transport: the client, sent through opsctl's shared retry loop.

:class:`PagerDutyTransport`, the base of :class:`~opsctl.integrations.pagerduty.PagerDutyAdapter`,
checks the connection settings, builds the official ``pagerduty`` client (7.x, over ``httpx2``)
and sends through it with all of that client's own retrying switched off: it would retry 429
forever with its own sleeps and never retry a 5xx. Instead every call runs the shared loop of
:mod:`opsctl.integrations.retry` under one total time ``budget``: per-request timeouts capped by
what is left, 429 waits from ``Retry-After``/``ratelimit-reset`` only when they fit, backoff for
5xx and network errors of idempotent calls, and the create's look-up by key before a retry after
an ambiguous failure.

The loop hands every other answer back for the adapter to read. Its failures are
:class:`~opsctl.errors.UpstreamError` (exit 4) whose text never carries the token.
``import pagerduty``/``httpx2`` happen only inside functions so that ``opsctl --help`` stays fast.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from opsctl import redact, tracing
from opsctl.errors import UpstreamError, UsageError
from opsctl.integrations.http import HTTP
from opsctl.integrations.http import status_text as status_text
from opsctl.integrations.retry import BACKOFF_INITIAL as BACKOFF_INITIAL
from opsctl.integrations.retry import BACKOFF_MAX as BACKOFF_MAX
from opsctl.integrations.retry import MAX_ATTEMPTS as MAX_ATTEMPTS
from opsctl.integrations.retry import MIN_ATTEMPT_TIME as MIN_ATTEMPT_TIME
from opsctl.integrations.retry import Budget as Budget
from opsctl.integrations.retry import Retrier
from opsctl.integrations.retry import truncate as truncate
from opsctl.secrets import check_secret

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger("opsctl.pagerduty")

DEFAULT_BASE_URL = "https://api.pagerduty.com"
TOKEN_HINT = "check integrations.pagerduty.token"
_NOT_RETRIED_HINT = "check the incident at PagerDuty before repeating: the first request may have been recorded"


class _DebugLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The ``pagerduty`` client's own log, demoted to debug under ``opsctl.pagerduty.client``.

    The client logs at error level whenever it hands a failed response back, which is exactly
    what we ask it to do; opsctl reports the outcome itself.
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            kwargs.setdefault("stacklevel", 2)
            self.logger.log(logging.DEBUG, msg, *args, **kwargs)


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
        token = check_secret(token, "integrations.pagerduty.token")
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
        self._retrier = Retrier(
            "PagerDuty",
            request_timeout=self.request_timeout,
            classifier=HTTP,
            sleep=sleep,
            monotonic=monotonic,
            address=base,
            hint=(
                f"check network access to {base} and https://status.pagerduty.com; "
                "integrations.pagerduty.timeout sets the time opsctl waits"
            ),
            not_retried_hint=_NOT_RETRIED_HINT,
            hints={
                "tls": "set integrations.pagerduty.ca_bundle to the CA that signed its certificate",
                "request": "check integrations.pagerduty.token and integrations.pagerduty.from",
            },
            log=log,
        )
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

    # -- sending ---------------------------------------------------------------------------

    def _new_budget(self) -> Budget:
        return self._retrier.budget(self.budget)

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None,
        params: dict[str, Any] | None,
        timeout: float,
    ) -> httpx2.Response:
        """One attempt. Network errors propagate (the retry loop classifies them, wrapped or not)."""
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
        except pagerduty.Error as exc:
            if isinstance(exc.__cause__, httpx2.TransportError):
                raise
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

        def send(timeout: float) -> httpx2.Response:
            return self._send(method, path, body=body, params=params, timeout=timeout)

        return self._retrier.call(
            send,
            f"{method} {path}",
            budget,
            idempotent=idempotent,
            before_retry_after_ambiguity=before_retry_after_ambiguity,
        )
