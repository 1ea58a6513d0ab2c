"""The redaction filter every byte of output passes through.

Resolved secret values are registered here the moment they are read; output,
logs, audit records and error messages call :func:`redact` before writing.
A registered value is masked in every form it tends to be printed in: raw,
JSON-escaped, repr-escaped (also as ``b'…'``), percent-encoded.  Passwords in
connection strings are masked too, registered or not: ``scheme://user:pass@host``,
``?password=…`` / ``&token=…`` query parameters and libpq ``password='…'`` keywords.

Redaction runs on every line opsctl writes, including text an attacker chose (an
incident title), so it must stay linear in the input: candidates are found by
anchors (``://``, a secret-looking key before ``=``) and parsed locally, with
patterns that cannot backtrack, and every scan resumes where the previous one ended.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "***"
_SECRET_KEYS = re.compile(r"(pass(word)?|secret|token|api[_-]?key|dsn|credential|private[_-]?key)", re.IGNORECASE)

REFERENCE_PATTERN = r"^(vault|aws-sm|file|env):\S+$"
_REFERENCE = re.compile(REFERENCE_PATTERN)

# A word that makes ``word=value`` a secret in free text (``sslpassword=``, ``PGPASSWORD=``,
# ``access_token=``, ``X-Amz-Signature=``); the key is the whole run of key characters around it.
# Searched in the lower-cased text: a case-insensitive pattern is several times slower.
_WORDS = r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|signature"
_SECRET_WORD = re.compile(_WORDS)
_SECRET_WORD_ANY_CASE = re.compile(_WORDS, re.IGNORECASE)  # when lower() changes lengths (rare letters)
_KEY_TAIL = re.compile(r"[\w.-]*")
_UNQUOTED_VALUE = re.compile(r"""[^\s&;"']*""")
# A quoted value runs to the closing quote (backslash escapes skipped) or, unterminated, to the end.
_QUOTED_VALUE = {
    "'": re.compile(r"'([^'\\]*(?:\\.[^'\\]*)*)'?", re.DOTALL),
    '"': re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"?', re.DOTALL),
}
# The authority after ``://``: it ends at a slash, whitespace, a quote or a backslash (JSON text).
_AUTHORITY = re.compile(r"""[^/\s\\"'<>`]*""")

_MIN_LENGTH = 4  # shorter values are not masked: it would mangle ordinary text

_lock = threading.Lock()
_values: set[str] = set()
_ordered: list[str] = []  # every masked form, longest first; replaced (never mutated) under the lock


def register(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it would appear, in any representation."""
    global _ordered
    if not value or len(value) < _MIN_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        forms = set(_ordered) | _representations(value)
        _ordered = sorted(forms, key=lambda f: (-len(f), f))


def forget_all() -> None:
    """For tests: drop every registered value."""
    global _ordered
    with _lock:
        _values.clear()
        _ordered = []


def _representations(value: str) -> set[str]:
    """The forms ``value`` takes in text: raw, trimmed, line by line, then each of those escaped
    as JSON (ASCII or not), as a Python ``repr`` (of the text and of its UTF-8 bytes), percent-encoded."""
    import json
    from urllib.parse import quote, quote_plus

    bases = {value, value.strip()}
    if "\n" in value or "\r" in value:  # a multi-line secret (a key file) may be printed a line at a time
        bases.update(line.strip() for line in value.splitlines())
    forms: set[str] = set()
    for base in bases:
        if len(base) < _MIN_LENGTH:
            continue
        data = _utf8(base)
        as_repr = repr(base)[1:-1]
        as_bytes = repr(data)[2:-1]
        encoded = {quote(data, safe=""), quote(data), quote_plus(data), quote_plus(data, safe="/")}
        encoded |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), e) for e in encoded}
        forms |= {base, as_repr, as_bytes, *encoded}
        for text in (base, as_repr, as_bytes):
            forms.add(json.dumps(text)[1:-1])
            forms.add(json.dumps(text, ensure_ascii=False)[1:-1])
    return {f for f in forms if len(f) >= _MIN_LENGTH}


def _utf8(text: str) -> bytes:
    """The bytes a program would send: undecodable bytes (``surrogateescape``) as they were."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def redact(text: str) -> str:
    """``text`` with registered secrets and connection-string passwords masked; linear time."""
    if not text:
        return text
    forms = _ordered  # a snapshot: register() replaces the list, never changes it
    if forms:
        text = _mask_values(text, forms)
    if "://" in text and "@" in text:
        text = _mask_url_passwords(text)
    if "=" in text:
        text = _mask_secret_parameters(text)
    return text


def _mask_values(text: str, forms: list[str]) -> str:
    """Every occurrence of every form, overlapping ones merged into one mask."""
    spans: list[tuple[int, int]] = []
    for form in forms:
        start = text.find(form)
        while start >= 0:
            end = start + len(form)
            spans.append((start, end))
            start = text.find(form, end)
    if not spans:
        return text
    spans.sort()  # each form's spans are already sorted: timsort merges the runs
    pieces: list[str] = []
    last = 0
    cover_start, cover_end = spans[0]
    for start, end in spans[1:]:
        if start <= cover_end:
            cover_end = max(cover_end, end)
            continue
        pieces += [text[last:cover_start], MASK]
        last = cover_end
        cover_start, cover_end = start, end
    pieces += [text[last:cover_start], MASK, text[cover_end:]]
    return "".join(pieces)


def _mask_url_passwords(text: str) -> str:
    """``scheme://user:password@host``: the password is what follows the first colon of the
    user info, which runs to the last ``@`` of the authority (unencoded ``@`` in passwords happen)."""
    pieces: list[str] = []
    last = 0
    pos = text.find("://")
    while pos >= 0:
        start = pos + 3
        match = _AUTHORITY.match(text, start)
        end = match.end() if match else start
        at = text.rfind("@", start, end)
        colon = text.find(":", start, at) if at > start else -1
        if colon >= 0 and at > colon + 1:
            pieces += [text[last : colon + 1], MASK]
            last = at
        pos = text.find("://", max(end - 1, start))  # the authority holds no "/": a next "://" starts at end-1 or later
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _mask_secret_parameters(text: str) -> str:
    """``key=value`` where the key looks secret: query parameters (``?password=``, ``&api_key=``),
    libpq keywords (``password='x y'``), environment assignments (``PGPASSWORD=``)."""
    lowered = text.lower()
    haystack, words = (lowered, _SECRET_WORD) if len(lowered) == len(text) else (text, _SECRET_WORD_ANY_CASE)
    pieces: list[str] = []
    last = 0
    pos = 0
    size = len(text)
    while (word := words.search(haystack, pos)) is not None:
        key_end = _KEY_TAIL.match(text, word.end())
        end = key_end.end() if key_end else word.end()
        if end >= size or text[end] != "=":
            pos = max(end, word.end())  # every keyword inside this run ends the key at the same place
            continue
        value_start, value_end = _value_span(text, end + 1)
        if value_end > value_start and not is_reference(text[value_start:value_end]):
            pieces += [text[last:value_start], MASK]
            last = value_end
        pos = max(value_end, end + 1)
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def _value_span(text: str, start: int) -> tuple[int, int]:
    """Where the value after ``=`` lies: inside its quotes if quoted (the quotes stay), else up to
    whitespace, ``&``, ``;`` or a quote."""
    opener = text[start : start + 1]
    if opener in _QUOTED_VALUE:
        quoted = _QUOTED_VALUE[opener].match(text, start)
        if quoted is not None:
            return quoted.start(1), quoted.end(1)
    elif text.startswith(('\\"', "\\'"), start):  # a quoted value inside JSON or repr text
        close = text.find(text[start : start + 2], start + 2)
        if close >= 0:
            return start + 2, close
        start += 2
    match = _UNQUOTED_VALUE.match(text, start)
    return start, match.end() if match else start


def redact_data(data: Any, *, mask_keys: bool = True) -> Any:
    """A copy of ``data`` with secret values masked; values under secret-looking keys too,
    unless they are secret references (``vault:…``), which are safe to show."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            shown = redact(key) if isinstance(key, str) else key
            if mask_keys and isinstance(key, str) and _SECRET_KEYS.search(key) and isinstance(value, str):
                out[shown] = value if is_reference(value) else MASK
            else:
                out[shown] = redact_data(value, mask_keys=mask_keys)
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
