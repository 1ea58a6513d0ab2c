"""The Kubernetes adapter's transport: one request through the client, and how failures read.

:func:`send` makes one request through the official client's ``ApiClient`` (its auth, TLS and
serialisation, not its typed models) and hands back the raw answer. :class:`KubeClassifier` is
:mod:`opsctl.integrations.retry`'s reading of that client: its :class:`ApiException` (a 5xx or 429
from a typed API call; status 0 for a TLS failure or a request it cannot prepare) and the
``urllib3`` errors beneath it (the adapter switches urllib3's own retries off, so they arrive raw:
refused, timed out, dropped). Answers are judged by status: 429 waits what ``Retry-After`` asks,
5xx backs off; 4xx go back to the adapter, which turns them into errors with :func:`rejection`.
Classes are recognised by module and name: importing this module imports neither library.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsctl import redact, tracing
from opsctl.errors import FailedError, RefusedError, UpstreamError, UsageError
from opsctl.integrations.http import parse_seconds
from opsctl.integrations.retry import Failure, truncate


class NotFoundError(FailedError):
    """The object to change or delete does not exist (404)."""


class AlreadyExistsError(RefusedError):
    """The object to create exists already (409 AlreadyExists)."""


class ConflictError(UpstreamError):
    """The object kept changing between our read and our write (409 Conflict), or a patch met one."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    data: bytes
    headers: Any


def send(
    api: Any,
    method: str,
    path: str,
    timeout: float,
    *,
    api_name: str,
    body: dict[str, Any] | None = None,
    query: Sequence[tuple[str, str]] = (),
    content_type: str = "application/json",
) -> Answer:
    """One attempt: ``method path`` with the invocation's ``traceparent``; urllib3 errors propagate."""
    from kubernetes.config.config_exception import ConfigException

    headers = {"Accept": "application/json", "traceparent": tracing.traceparent()}
    if body is not None:
        headers["Content-Type"] = content_type
    try:  # the credentials may be refreshed here (an expired exec-plugin or auth-provider token)
        request = api.param_serialize(
            method, path, query_params=list(query), header_params=headers, body=body, auth_settings=["BearerToken"]
        )
    except ConfigException as exc:
        raise UsageError(redact.redact(f"{api_name}: cannot refresh the credentials: {truncate(str(exc))}")) from None
    authorization = request[2].get("authorization")
    if isinstance(authorization, str):  # a refreshed token is as secret as the first
        redact.register(authorization)
        redact.register(authorization.split(" ", 1)[-1])
    try:
        response = api.call_api(*request, _request_timeout=timeout)
    except ValueError as exc:  # http.client refusing a header: its message quotes the value
        if "header" not in str(exc).lower():
            raise
        raise UpstreamError(f"{api_name}: {method} {path} could not be sent (an illegal header value)") from None
    return Answer(int(response.status), response.read() or b"", response.headers)


def _names(exc: BaseException) -> tuple[str, set[str]]:
    return type(exc).__module__.split(".")[0], {cls.__name__ for cls in type(exc).__mro__}


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, its ``__cause__`` chain and urllib3's ``MaxRetryError.reason``."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen) and len(seen) < 20:
        seen.append(current)
        reason = getattr(current, "reason", None)
        current = current.__cause__ or (reason if isinstance(reason, BaseException) else None)
    return seen


def status_parts(data: bytes | str | None) -> tuple[str, str]:
    """``(reason, message)`` of a ``Status`` answer body; empty strings when it is not one."""
    try:
        body = json.loads(data or b"")
    except (ValueError, TypeError):
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    reason, message = body.get("reason"), body.get("message")
    return (
        reason if isinstance(reason, str) else "",
        redact.redact(truncate(message)) if isinstance(message, str) else "",
    )


class KubeClassifier:
    """Failures of requests made through the ``kubernetes`` client (see the module docstring)."""

    def error(self, exc: Exception, timeout: float) -> Failure | None:
        for cause in _causes(exc):
            module, names = _names(cause)
            if module == "kubernetes" and "ApiException" in names:
                return self._api_exception(cause)
            if module == "urllib3" and "HTTPError" in names:
                return self._network(cause, names, timeout)
        return None

    def answer(self, response: Any) -> Failure | None:
        status = int(getattr(response, "status_code", getattr(response, "status", 0)))
        return self._status(status, getattr(response, "headers", None), getattr(response, "data", None))

    def _api_exception(self, exc: Any) -> Failure | None:
        status = int(exc.status or 0)
        if status == 0:  # raised by the client before any answer: a TLS failure, or a request it cannot build
            reason = str(exc.reason or "")
            if reason.startswith("SSLError"):
                detail = truncate(reason.split("\n", 1)[-1])
                return Failure(f"TLS failed ({detail})", "tls", sent=False, retry=False)
            return Failure("the request could not be prepared", "request", sent=False, retry=False)
        return self._status(status, exc.headers, exc.body)

    @staticmethod
    def _status(status: int, headers: Any, body: Any) -> Failure | None:
        if status == 429:
            wait = parse_seconds((headers or {}).get("Retry-After"), allow_date=True)
            return Failure("throttled (429 Too Many Requests)", "rate_limited", sent=False, answered=True, wait=wait)
        if status >= 500:
            reason, message = status_parts(body)
            text = f"HTTP {status}" + (f" {reason}" if reason else "") + (f": {message}" if message else "")
            return Failure(text, "server_error", sent=True, answered=True)
        return None

    @staticmethod
    def _network(exc: BaseException, names: set[str], timeout: float) -> Failure:
        detail = truncate(str(exc)) or type(exc).__name__
        if "SSLError" in names:
            return Failure(f"TLS failed ({detail})", "tls", sent=False, retry=False)
        if "NameResolutionError" in names:
            return Failure("cannot resolve the server's host name", "network", sent=False)
        if "NewConnectionError" in names:
            text = "connection refused" if "refused" in detail.lower() else f"cannot connect ({detail})"
            return Failure(text, "network", sent=False)
        if "ConnectTimeoutError" in names:
            return Failure(f"connecting timed out after {timeout:.1f}s", "network", sent=False)
        if "ProxyError" in names:
            return Failure(f"cannot connect through the proxy ({detail})", "network", sent=False)
        if "ReadTimeoutError" in names:
            return Failure(f"no answer within {timeout:.1f}s", "network", sent=True)
        if "ProtocolError" in names:
            return Failure("connection dropped before an answer", "network", sent=True)
        return Failure(f"network error ({type(exc).__name__}: {detail})", "network", sent=True)


KUBE = KubeClassifier()


def rejection(status: int, data: bytes, *, api: str, verb: str, what: str) -> Exception:
    """The error for a 4xx (or unexpected) answer to ``verb`` on ``what`` ("deployment prod/api")."""
    reason, message = status_parts(data)
    said = f": {message}" if message else ""
    code = f"{status} {reason}".strip()
    if status == 401:
        return UpstreamError(
            f"{api} rejected the credentials of the kubeconfig user (401 Unauthorized)",
            "refresh the kubeconfig credentials (kubectl get --raw /version tells whether they work)",
        )
    if status == 403:
        return UpstreamError(
            f"{api} does not allow to {verb} {what} (403 Forbidden){said}",
            "check the RBAC permissions of the kubeconfig user (kubectl auth can-i)",
        )
    if status == 404:
        return NotFoundError(f"{what} not found ({api})")
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExistsError(f"{what} already exists ({api})", "delete it or choose another name")
    if status == 409:
        return ConflictError(f"{api} refused to {verb} {what} (409 Conflict){said}", "retry: it changed meanwhile")
    if status in (400, 422):
        return UsageError(f"{api} refused to {verb} {what} ({code}){said}")
    if 300 <= status < 400:
        return UpstreamError(
            f"{api} answered {verb} {what} with a redirect ({status})", "check the server of the kubeconfig cluster"
        )
    return UpstreamError(f"{api} answered {verb} {what} with {code}{said}")
