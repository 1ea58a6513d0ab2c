"""The redaction filter every byte of output passes through.

Resolved secret values are registered here the moment they are read; output,
logs, audit records and error messages call :func:`redact` before writing.
Passwords embedded in URLs (``scheme://user:pass@host``) are masked too.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "***"
_URL_PASSWORD = re.compile(r"(?P<pre>[a-z][a-z0-9+.-]*://[^/@:\s]*:)(?P<pw>[^/@\s]+)(?P<post>@)", re.IGNORECASE)
_SECRET_KEYS = re.compile(r"(pass(word)?|secret|token|api[_-]?key|dsn|credential|private[_-]?key)", re.IGNORECASE)

REFERENCE_PATTERN = r"^(vault|aws-sm|file|env):\S+$"
_REFERENCE = re.compile(REFERENCE_PATTERN)

_lock = threading.Lock()
_values: set[str] = set()
_ordered: list[str] = []


def register(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it would appear."""
    if not value or len(value) < 4:  # too short to mask without mangling ordinary text
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        _ordered.append(value)
        _ordered.sort(key=len, reverse=True)


def forget_all() -> None:
    """For tests: drop every registered value."""
    with _lock:
        _values.clear()
        _ordered.clear()


def redact(text: str) -> str:
    if not text:
        return text
    for value in _ordered:
        if value in text:
            text = text.replace(value, MASK)
    return _URL_PASSWORD.sub(lambda m: f"{m.group('pre')}{MASK}{m.group('post')}", text)


def redact_data(data: Any, *, mask_keys: bool = True) -> Any:
    """A copy of ``data`` with secret values masked; values under secret-looking keys too,
    unless they are secret references (``vault:…``), which are safe to show."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if mask_keys and isinstance(key, str) and _SECRET_KEYS.search(key) and isinstance(value, str):
                out[key] = value if is_reference(value) else MASK
            else:
                out[key] = redact_data(value, mask_keys=mask_keys)
        return out
    if isinstance(data, list | tuple):
        return [redact_data(item, mask_keys=mask_keys) for item in data]
    if isinstance(data, str):
        return redact(data)
    return data


def is_reference(text: str) -> bool:
    """Whether ``text`` is a secret reference (``vault:…``, ``aws-sm:…``, ``file:…``, ``env:…``),
    which names a secret without holding it and so is safe to show."""
    return bool(_REFERENCE.match(text))
