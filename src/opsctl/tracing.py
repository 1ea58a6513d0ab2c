"""W3C trace context: one trace per invocation, spans within it.

``traceparent()`` gives the header value for outgoing HTTP calls; the JSON log
formatter reads the current ids from here.  An incoming ``TRACEPARENT``
environment variable (as set by CI systems and wrappers) is continued.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_trace_id: ContextVar[str | None] = ContextVar("opsctl_trace_id", default=None)
_span_id: ContextVar[str | None] = ContextVar("opsctl_span_id", default=None)


def _new_trace_id() -> str:
    value = secrets.token_hex(16)
    return value if value.strip("0") else _new_trace_id()


def _new_span_id() -> str:
    value = secrets.token_hex(8)
    return value if value.strip("0") else _new_span_id()


def start_trace(parent: str | None = None) -> str:
    """Begin this invocation's trace (continuing ``parent``/``$TRACEPARENT`` when valid)."""
    parent = parent if parent is not None else os.environ.get("TRACEPARENT", "")
    match = _TRACEPARENT.match(parent.strip().lower())
    trace_id = match.group(1) if match and match.group(1).strip("0") else _new_trace_id()
    _trace_id.set(trace_id)
    _span_id.set(_new_span_id())
    return trace_id


def trace_id() -> str:
    current = _trace_id.get()
    return current if current is not None else start_trace()


def span_id() -> str:
    current = _span_id.get()
    if current is None:
        start_trace()
        current = _span_id.get()
    assert current is not None
    return current


@contextmanager
def span() -> Iterator[str]:
    """A child span for one unit of work (an outgoing call, a phase)."""
    trace_id()
    token = _span_id.set(_new_span_id())
    try:
        yield _span_id.get() or ""
    finally:
        _span_id.reset(token)


def traceparent() -> str:
    """The ``traceparent`` header value for an outgoing request."""
    return f"00-{trace_id()}-{span_id()}-01"
