"""Logging to stderr: human text by default, JSON lines with ``--log-format json``.

Every record carries ``timestamp``, ``level``, ``service``, ``trace_id``,
``span_id`` and ``message``; every record passes the redaction filter.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from opsctl import tracing
from opsctl.redact import redact

_service: ContextVar[str | None] = ContextVar("opsctl_log_service", default=None)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "service"}


def getLogger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def set_service(name: str | None) -> None:
    """Tag later log records with the service being worked on."""
    _service.set(name)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        return True


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = tracing.trace_id()
        record.span_id = tracing.span_id()
        if not getattr(record, "service", None):
            record.service = _service.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": getattr(record, "service", None),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        service = getattr(record, "service", None)
        prefix = f"[{service}] " if service else ""
        from opsctl.output import printable

        text = printable(redact(f"{record.levelname.lower()}: {prefix}{record.getMessage()}"))
        if record.exc_info:
            text += "\n" + printable(redact(self.formatException(record.exc_info)), multiline=True)
        return text


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time: a live progress display redirects it,
    so log lines are printed above the display instead of tearing it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def setup(fmt: str = "text", verbosity: int = 0, stream: IO[str] | None = None) -> None:
    """Configure the ``opsctl`` logger: WARNING by default, INFO with -v, DEBUG with -vv."""
    logger = logging.getLogger("opsctl")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    target: Any = stream if stream is not None else _CurrentStderr()
    handler = logging.StreamHandler(target)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(
        logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 or fmt == "json" else logging.WARNING
    )
    logger.propagate = False
