"""PagerDuty REST API v2: the thin typed adapter the incident engine pages through.

Built on the official ``pagerduty`` client (7.x, over ``httpx2``), with all of that client's
own retrying switched off: it would retry 429 forever with its own sleeps and never retry a
5xx. Instead every call here runs opsctl's own loop under one total time ``budget``:

* each attempt gets ``request_timeout`` seconds, capped by what is left of the budget;
* 429: wait ``Retry-After`` (or else ``ratelimit-reset``, or else a short backoff), but only
  when the wait fits in the remaining budget; otherwise give up at once;
* 5xx and network errors: short exponential backoff (0.5 s, 1 s, 2 s, ...), only for idempotent
  calls — GETs, the PUT status changes, and the create, which is idempotent through its
  ``incident_key``: after an ambiguous failure the next attempt first looks the incident up by
  key, and PagerDuty's "Open incident with matching dedup key already exists" answer is turned
  into that existing incident. Notes and status updates (POST) are retried only when nothing
  was processed (429, or a connection that never got established).

Every failure is an :class:`~opsctl.errors.UpstreamError` (exit 4) whose text never carries
the token. ``import pagerduty`` happens only inside methods so that ``opsctl --help`` stays fast.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from opsctl import redact, tracing
from opsctl.errors import UpstreamError, UsageError

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger("opsctl.pagerduty")

DEFAULT_BASE_URL = "https://api.pagerduty.com"
DEDUP_MESSAGE = "open incident with matching dedup key already exists on this service"
OPEN_STATUSES = ("triggered", "acknowledged")
URGENCIES = ("high", "low")

BACKOFF_INITIAL = 0.5  # seconds before the 2nd attempt after a 5xx / network error
BACKOFF_MAX = 4.0
MAX_ATTEMPTS = 10  # HTTP attempts per adapter call, whatever the budget says
MIN_ATTEMPT_TIME = 0.1  # an attempt with less time than this left is not worth starting
_PRIORITY_PAGES = 20
_TEXT_LIMIT = 300

_TOKEN_HINT = "check integrations.pagerduty.token"
_NOT_RETRIED_HINT = "check the incident at PagerDuty before repeating: the first request may have been recorded"


@dataclass(frozen=True)
class PdIncident:
    """A PagerDuty incident as opsctl needs it."""

    id: str
    number: int | None
    status: str
    urgency: str
    html_url: str | None
    incident_key: str | None
    created_at: str | None


@dataclass(frozen=True)
class PlannedCall:
    """One request a ``--dry-run`` would send."""

    method: str
    path: str
    body: dict[str, Any] | None


# ----------------------------------------------------------------------------------------
# Internals: the budget, network failures, the client's logger
# ----------------------------------------------------------------------------------------


@dataclass
class _Budget:
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


class _AlreadyThere(Exception):
    """Raised from inside the create loop when a look-up by key found the incident."""

    def __init__(self, incident: PdIncident) -> None:
        super().__init__(incident.id)
        self.incident = incident


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


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def _quote_id(value: str, what: str = "incident") -> str:
    if not value or not value.strip():
        raise UsageError(f"no PagerDuty {what} id given", "the incident has not been delivered to PagerDuty yet")
    return quote(value.strip(), safe="")


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

    detail = _truncate(str(exc)) or type(exc).__name__
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


def _status_text(response: httpx2.Response) -> str:
    reason = response.reason_phrase
    return f"{response.status_code} {reason}" if reason else str(response.status_code)


def _error_parts(response: httpx2.Response) -> tuple[str, list[str]]:
    """PagerDuty's ``error.message`` and ``error.errors[]`` (or the start of a non-JSON body)."""
    try:
        data = response.json()
    except ValueError:
        return _truncate(response.text), []
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return _truncate(response.text), []
    message = str(error.get("message") or "").strip()
    errors = error.get("errors")
    items = [str(item).strip() for item in errors if str(item).strip()] if isinstance(errors, list) else []
    return message, items


def _is_dedup_answer(response: httpx2.Response) -> bool:
    if response.status_code != 400:
        return False
    message, errors = _error_parts(response)
    return any(DEDUP_MESSAGE in text.lower() for text in [message, *errors])


def _json(response: httpx2.Response, method: str, path: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise UpstreamError(
            f"PagerDuty answered {method} {path} with something that is not JSON: {_truncate(response.text)!r}"
        ) from None
    if not isinstance(data, dict):
        raise UpstreamError(f"PagerDuty answered {method} {path} with unexpected JSON ({type(data).__name__})")
    return data


def _incident_from(data: Any, method: str, path: str) -> PdIncident:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise UpstreamError(f"PagerDuty answered {method} {path} without an incident id")
    number = data.get("incident_number")

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    return PdIncident(
        id=data["id"],
        number=number if isinstance(number, int) and not isinstance(number, bool) else None,
        status=text("status") or "",
        urgency=text("urgency") or "",
        html_url=text("html_url"),
        incident_key=text("incident_key"),
        created_at=text("created_at"),
    )


# ----------------------------------------------------------------------------------------
# The adapter
# ----------------------------------------------------------------------------------------


class PagerDutyAdapter:
    """PagerDuty REST API v2 for the incident engine. Not for concurrent use from several threads."""

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
            raise UsageError("integrations.pagerduty.token resolved to an empty value", _TOKEN_HINT)
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
        self._priorities: dict[str, str] | None = None
        self._client = self._build_client(token)

    def __repr__(self) -> str:
        return f"PagerDutyAdapter(base_url={self.base_url!r}, from_email={self.from_email!r})"

    def __enter__(self) -> PagerDutyAdapter:
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

    def _new_budget(self) -> _Budget:
        return _Budget(self.budget, self._monotonic)

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
        budget: _Budget,
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
                before_retry_after_ambiguity()  # raises _AlreadyThere when the work was done
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
                    problem = f"HTTP {_status_text(response)}"
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

    def _exhausted(self, budget: _Budget, *, wait: float | None = None, left: float | None = None) -> UpstreamError:
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

    def _check(self, response: httpx2.Response, method: str, path: str) -> None:
        """Raise UpstreamError for anything but a 2xx answer."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 401:
            raise UpstreamError("PagerDuty rejected the API token (401)", _TOKEN_HINT)
        if 300 <= status < 400:
            raise UpstreamError(
                f"PagerDuty answered {method} {path} with a redirect ({_status_text(response)})",
                "check integrations.pagerduty.base_url",
            )
        message, errors = _error_parts(response)
        detail = ": ".join(part for part in (message, "; ".join(errors)) if part)
        text = f"PagerDuty rejected {method} {path} ({_status_text(response)})"
        if detail:
            text += f": {detail}"
        hint = None
        if status == 403:
            hint = "the token's user may lack permission for this; check integrations.pagerduty.token and .from"
        elif status == 404:
            hint = "check the PagerDuty ids in the service's pagerduty block"
        elif "from" in detail.lower() and "header" in detail.lower():
            hint = "check integrations.pagerduty.from"
        raise UpstreamError(redact.redact(text), hint)

    def _ok_json(
        self,
        method: str,
        path: str,
        budget: _Budget,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotent: bool,
    ) -> dict[str, Any]:
        response = self._call(method, path, budget, body=body, params=params, idempotent=idempotent)
        self._check(response, method, path)
        return _json(response, method, path)

    # -- priorities ------------------------------------------------------------------------

    def priority_id(self, name: str) -> str | None:
        """The id of the priority called ``name`` (GET /priorities once, cached); None if there is none."""
        return self._priority_id(name, self._new_budget())

    def _priority_id(self, name: str, budget: _Budget) -> str | None:
        if self._priorities is None:
            self._priorities = self._load_priorities(budget)
        if name in self._priorities:
            return self._priorities[name]
        folded = {key.casefold(): value for key, value in self._priorities.items()}
        return folded.get(name.strip().casefold())

    def _load_priorities(self, budget: _Budget) -> dict[str, str]:
        found: dict[str, str] = {}
        offset = 0
        for _ in range(_PRIORITY_PAGES):
            params = {"limit": 100, "offset": offset}
            response = self._call("GET", "/priorities", budget, params=params, idempotent=True)
            if response.status_code in (402, 403, 404):
                # Accounts without the priorities feature: page without one.
                log.debug("PagerDuty GET /priorities: %s, no priorities", response.status_code)
                return {}
            self._check(response, "GET", "/priorities")
            data = _json(response, "GET", "/priorities")
            items = data.get("priorities")
            if not isinstance(items, list):
                break
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("id"), str):
                    found.setdefault(item["name"], item["id"])
            if not data.get("more") or not items:
                break
            offset += len(items)
        return found

    # -- incidents -------------------------------------------------------------------------

    @staticmethod
    def _validate_create(service_id: str, title: str, urgency: str, incident_key: str) -> None:
        if not service_id or not service_id.strip():
            raise UsageError("the service has no PagerDuty service id", "set pagerduty.service_id for the service")
        if not title or not title.strip():
            raise UsageError("the incident title is empty")
        if urgency not in URGENCIES:
            raise UsageError(f"urgency {urgency!r} is not one of {', '.join(URGENCIES)}")
        if not incident_key or not incident_key.strip():
            raise UsageError("an incident key is required: it is what makes paging idempotent")

    @staticmethod
    def _create_body(
        *,
        service_id: str,
        title: str,
        urgency: str,
        incident_key: str,
        details: str | None,
        escalation_policy_id: str | None,
        priority: dict[str, str] | None,
    ) -> dict[str, Any]:
        incident: dict[str, Any] = {
            "type": "incident",
            "title": title,
            "service": {"id": service_id, "type": "service_reference"},
            "urgency": urgency,
            "incident_key": incident_key,
        }
        if details:
            incident["body"] = {"type": "incident_body", "details": details}
        if escalation_policy_id:
            incident["escalation_policy"] = {"id": escalation_policy_id, "type": "escalation_policy_reference"}
        if priority is not None:
            incident["priority"] = priority
        return {"incident": incident}

    def create_incident(
        self,
        *,
        service_id: str,
        title: str,
        urgency: str,
        incident_key: str,
        details: str | None,
        escalation_policy_id: str | None,
        priority_name: str | None,
    ) -> PdIncident:
        """Create the incident, exactly once: an incident already open under ``incident_key`` is returned."""
        self._validate_create(service_id, title, urgency, incident_key)
        budget = self._new_budget()
        priority = None
        if priority_name:
            found = self._priority_id(priority_name, budget)
            if found is None:
                log.debug("PagerDuty has no priority named %r; creating without one", priority_name)
            else:
                priority = {"id": found, "type": "priority_reference"}
        body = self._create_body(
            service_id=service_id,
            title=title,
            urgency=urgency,
            incident_key=incident_key,
            details=details,
            escalation_policy_id=escalation_policy_id,
            priority=priority,
        )

        def look_up() -> None:
            existing = self._find_open(incident_key, service_id, budget)
            if existing is not None:
                log.debug("PagerDuty: incident %s with key %r already exists", existing.id, incident_key)
                raise _AlreadyThere(existing)

        try:
            response = self._call(
                "POST", "/incidents", budget, body=body, idempotent=True, before_retry_after_ambiguity=look_up
            )
            if _is_dedup_answer(response):
                look_up()
                raise UpstreamError(
                    f"PagerDuty reports an open incident with key {incident_key!r} on service {service_id} "
                    "but it could not be found",
                    "check the service's open incidents at PagerDuty",
                )
        except _AlreadyThere as found:
            return found.incident
        self._check(response, "POST", "/incidents")
        data = _json(response, "POST", "/incidents")
        return _incident_from(data.get("incident"), "POST", "/incidents")

    def find_open_by_key(self, incident_key: str, service_id: str | None = None) -> PdIncident | None:
        """The open (triggered/acknowledged) incident with this key, on ``service_id`` if given."""
        return self._find_open(incident_key, service_id, self._new_budget())

    def _find_open(self, incident_key: str, service_id: str | None, budget: _Budget) -> PdIncident | None:
        params: dict[str, Any] = {
            "incident_key": incident_key,
            "statuses[]": list(OPEN_STATUSES),
            "date_range": "all",
        }
        if service_id:
            params["service_ids[]"] = [service_id]
        data = self._ok_json("GET", "/incidents", budget, params=params, idempotent=True)
        items = data.get("incidents")
        if not isinstance(items, list):
            return None
        for item in items:
            if isinstance(item, dict) and item.get("incident_key") in (None, incident_key):
                return _incident_from(item, "GET", "/incidents")
        return None

    def _set_status(self, incident_id: str, status: str, resolution: str | None = None) -> PdIncident:
        path = f"/incidents/{_quote_id(incident_id)}"
        body = self._status_body(status, resolution)
        data = self._ok_json("PUT", path, self._new_budget(), body=body, idempotent=True)
        return _incident_from(data.get("incident"), "PUT", path)

    @staticmethod
    def _status_body(status: str, resolution: str | None = None) -> dict[str, Any]:
        incident: dict[str, Any] = {"type": "incident_reference", "status": status}
        if resolution:
            incident["resolution"] = resolution
        return {"incident": incident}

    def acknowledge(self, incident_id: str) -> PdIncident:
        return self._set_status(incident_id, "acknowledged")

    def resolve(self, incident_id: str, resolution: str | None) -> PdIncident:
        return self._set_status(incident_id, "resolved", resolution)

    def add_note(self, incident_id: str, content: str) -> None:
        if not content or not content.strip():
            raise UsageError("the note is empty")
        path = f"/incidents/{_quote_id(incident_id)}/notes"
        self._ok_json("POST", path, self._new_budget(), body={"note": {"content": content}}, idempotent=False)

    def status_update(self, incident_id: str, message: str) -> None:
        if not message or not message.strip():
            raise UsageError("the status update is empty")
        path = f"/incidents/{_quote_id(incident_id)}/status_updates"
        self._ok_json("POST", path, self._new_budget(), body={"message": message}, idempotent=False)

    # -- dry-run plans ---------------------------------------------------------------------

    @staticmethod
    def plan_create(
        *,
        service_id: str,
        title: str,
        urgency: str,
        incident_key: str,
        details: str | None,
        escalation_policy_id: str | None,
        priority_name: str | None,
    ) -> list[PlannedCall]:
        """The write :meth:`create_incident` sends. Reads are not planned: the priority id, looked up
        by name (GET /priorities) when it runs, shows as a placeholder, and is left out then if the
        account has no such priority."""
        PagerDutyAdapter._validate_create(service_id, title, urgency, incident_key)
        priority = None
        if priority_name:
            priority = {"id": f"<id of priority {priority_name}, if the account has it>", "type": "priority_reference"}
        body = PagerDutyAdapter._create_body(
            service_id=service_id,
            title=title,
            urgency=urgency,
            incident_key=incident_key,
            details=details,
            escalation_policy_id=escalation_policy_id,
            priority=priority,
        )
        return [PlannedCall("POST", "/incidents", body)]

    @staticmethod
    def plan_acknowledge(incident_id: str) -> list[PlannedCall]:
        return [PlannedCall("PUT", f"/incidents/{incident_id}", PagerDutyAdapter._status_body("acknowledged"))]

    @staticmethod
    def plan_resolve(incident_id: str, resolution: str | None) -> list[PlannedCall]:
        body = PagerDutyAdapter._status_body("resolved", resolution)
        return [PlannedCall("PUT", f"/incidents/{incident_id}", body)]

    @staticmethod
    def plan_update(incident_id: str, message: str) -> list[PlannedCall]:
        """A status update and the same text as a note (what ``incident update`` sends)."""
        return [
            PlannedCall("POST", f"/incidents/{incident_id}/status_updates", {"message": message}),
            PlannedCall("POST", f"/incidents/{incident_id}/notes", {"note": {"content": message}}),
        ]

    @staticmethod
    def plan_note(incident_id: str, content: str) -> list[PlannedCall]:
        return [PlannedCall("POST", f"/incidents/{incident_id}/notes", {"note": {"content": content}})]
