"""Durations, instants and clocks: one shared helper for every command.

Durations are written ``90s``, ``15m``, ``1h30m``, ``7d``, ``2w``.  Instants
accept ISO 8601 (with an explicit offset or ``Z``; a naive time is refused
unless a default zone is given) or a relative ``-2h`` / ``2h ago`` / ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(?:(\d+)([smhdw]))+$")
_PART = re.compile(r"(\d+)([smhdw])")
DURATION_PATTERN = r"^([0-9]+[smhdw])+$"

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``1h30m`` style text; a bare number is seconds."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError("a duration must be like 15m, 1h or 7d")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=text)
    value = str(text).strip().lower()
    if not _DURATION.match(value):
        raise ValueError(f"bad duration {text!r}: use a number and a unit, like 90s, 15m, 1h30m or 7d")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in _PART.findall(value)))


def format_duration(delta: timedelta) -> str:
    """The shortest ``1h30m`` style text for ``delta`` (``0m`` for zero)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0m"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts = []
    units: tuple[tuple[str, int], ...] = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    if seconds < 2 * 86400 or seconds % 86400:  # 24h reads better than 1d; 36h better than 1d12h
        units = units[1:]
    for unit, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def validate_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use an IANA name like Europe/Berlin or UTC") from exc
    return name


_RELATIVE = re.compile(r"^-?\s*((?:\d+[smhdw])+)(\s+ago)?$")


def parse_instant(text: str, *, now: datetime | None = None, default_tz: str | None = None) -> datetime:
    """An aware datetime from ISO 8601, ``now``, ``-2h``, ``2h ago`` or a bare ``24h`` (= 24 h ago)."""
    now = now or utcnow()
    value = text.strip()
    if value.lower() == "now":
        return now
    match = _RELATIVE.match(value.lower())
    if match:
        return now - parse_duration(match.group(1))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"bad time {text!r}: use ISO 8601 with a zone (2026-11-26T10:00:00Z) or a relative time (2h, 30m ago)"
        ) from exc
    if parsed.tzinfo is None:
        if default_tz is None:
            raise ValueError(f"time {text!r} has no zone: add Z or an offset like +01:00")
        parsed = parsed.replace(tzinfo=ZoneInfo(default_tz))
    return parsed


def isoformat(moment: datetime | None) -> str | None:
    """ISO 8601 with offset, seconds precision; ``None`` stays ``None``."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")
