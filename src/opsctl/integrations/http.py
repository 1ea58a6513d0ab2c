"""httpx clients for integrations: trace context on every request, debug logs, sane timeouts."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from opsctl import tracing

log = logging.getLogger("opsctl.http")


def _inject(request: httpx.Request) -> None:
    request.headers["traceparent"] = tracing.traceparent()
    log.debug("%s %s", request.method, request.url.copy_with(query=None))


def _record(response: httpx.Response) -> None:
    log.debug("%s %s -> %s", response.request.method, response.request.url.copy_with(query=None), response.status_code)


def client(**kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` that carries the invocation's ``traceparent`` header."""
    hooks = kwargs.pop("event_hooks", {})
    hooks.setdefault("request", []).append(_inject)
    hooks.setdefault("response", []).append(_record)
    kwargs.setdefault("timeout", httpx.Timeout(10.0, connect=5.0))
    return httpx.Client(event_hooks=hooks, **kwargs)
