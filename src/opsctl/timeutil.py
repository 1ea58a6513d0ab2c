"""Durations, instants and clocks: one parser for every option that takes a time.

Durations are written ``90s``, ``15m``, ``1h30m``, ``7d``, ``2w``.  Instants
(``audit --since``, ``db restore --to``, drills) are absolute with an explicit
zone, or relative to now.  A wall-clock time without a zone is refused: at
3 a.m. nobody should have to guess whose 02:41 was meant, and a restore to the
wrong hour is worse than a usage error.  For the same reason a local time that
a DST change skips or repeats is refused with the two offsets to choose from.

Whatever a user types fails as a ``ValueError`` whose message fits one stderr
line (the CLI turns it into exit 2), in bounded time: the length is capped
before any parsing and every number is range-checked before it reaches
``datetime``, so nothing surfaces as an ``OverflowError``.  ``zoneinfo`` is
imported only when a zone name is used; this module loads on every start.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:[0-9]+[smhdw])+", re.ASCII)
_PART = re.compile(r"([0-9]+)([smhdw])", re.ASCII)
DURATION_PATTERN = r"^([0-9]+[smhdw])+$"
DURATION_FORMS = "90s, 15m, 1h30m, 7d or 2w"
INSTANT_FORMS = (
    "now, 15m ago, -2h, 24h (= 24h ago), 2026-11-27T02:41Z, 2026-11-27 02:41+01:00 or 2026-11-27 02:41 Europe/Berlin"
)
MAX_DURATION = timedelta(days=36525)  # a century: anything longer is a typo, and stays far from datetime's limits
_MAX_TEXT = 64  # longer than any real time or duration; bounds regex and int() work

_RELATIVE = re.compile(r"(?P<minus>-\s*)?(?P<span>(?:[0-9]+[smhdw])+)(?P<ago>\s+ago)?", re.ASCII)
_ABSOLUTE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[T ](?P<time>[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,6})?)?))?"
    r"(?:\s?(?P<offset>Z|[+-][0-9]{2}(?::?[0-9]{2}(?::?[0-9]{2})?)?))?"
    r"(?:\s+(?P<zone>[A-Za-z][A-Za-z0-9_+\-/]{0,63}))?",
    re.ASCII | re.IGNORECASE,
)
_TIME_ONLY = re.compile(r"(?P<time>[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?)(?P<rest>.*)", re.ASCII | re.DOTALL)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _shown(text: object) -> str:
    """The user's text for an error line: quoted, control characters escaped, never long."""
    shown = repr(text)
    return shown if len(shown) <= _MAX_TEXT + 2 else shown[:_MAX_TEXT] + "…"


def _out_of_range(text: object, *, negative: bool) -> ValueError:
    if negative:
        return ValueError(f"duration {_shown(text)} is negative: a duration counts forward, like {DURATION_FORMS}")
    return ValueError(f"duration {_shown(text)} is too long: at most {format_duration(MAX_DURATION)} (a century)")


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``1h30m`` style text (any case, surrounding spaces ignored); a bare number is seconds."""
    if isinstance(text, bool) or not isinstance(text, str | int | float | timedelta):
        raise ValueError(f"a duration is written like {DURATION_FORMS}, not {type(text).__name__}")
    if isinstance(text, float) and math.isnan(text):
        raise ValueError(f"a duration is written like {DURATION_FORMS}, not nan")
    if not isinstance(text, str):
        seconds = text.total_seconds() if isinstance(text, timedelta) else text
        if not 0 <= seconds <= MAX_DURATION.total_seconds():
            raise _out_of_range(text, negative=seconds < 0)
        return text if isinstance(text, timedelta) else timedelta(seconds=text)
    value = text.strip().lower()
    if not value:
        raise ValueError(f"empty duration: write one like {DURATION_FORMS}")
    if len(value) > _MAX_TEXT:
        raise ValueError(f"duration is too long to be one ({len(value)} characters): write one like {DURATION_FORMS}")
    if value.startswith("-") and _DURATION.fullmatch(value[1:].strip()):
        raise _out_of_range(text, negative=True)
    if not _DURATION.fullmatch(value):
        raise ValueError(f"bad duration {_shown(text)}: use a number and a unit (s m h d w), like {DURATION_FORMS}")
    seconds = _seconds(value)
    if seconds > MAX_DURATION.total_seconds():
        raise _out_of_range(text, negative=False)
    return timedelta(seconds=seconds)


def _seconds(span: str) -> int:
    return sum(int(count) * _UNITS[unit] for count, unit in _PART.findall(span))


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
    """``name`` unchanged if ``zoneinfo`` can load it (config ``timezone:`` fields), else a ``ValueError``."""
    _zone(name)
    return name


def _zone(name: str) -> tzinfo:
    """The IANA zone ``name``; ``localtime`` is refused because it means "whatever this machine says"."""
    from zoneinfo import ZoneInfo

    problem = f"unknown time zone {_shown(name)}: use an IANA name like Europe/Berlin or UTC"
    if not isinstance(name, str) or not 0 < len(name) <= _MAX_TEXT or name == "localtime":
        raise ValueError(problem)
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, not a relative key, a directory, a too-long name
        raise ValueError(problem) from None


def parse_instant(text: str, *, now: datetime) -> datetime:
    """The aware UTC instant ``text`` names; ``now`` anchors relative forms (see :data:`INSTANT_FORMS`).

    The result is in UTC so that arithmetic on it is plain elapsed time, never
    wall-clock arithmetic inside a zone with DST.
    """
    if now.utcoffset() is None:
        raise TypeError("parse_instant needs an aware now")
    if not isinstance(text, str):
        raise ValueError(f"a time is written like {INSTANT_FORMS}")
    value = text.strip()
    if not value:
        raise ValueError(f"empty time: use {INSTANT_FORMS}")
    if len(value) > _MAX_TEXT:
        raise ValueError(f"time is too long to be one ({len(value)} characters): use {INSTANT_FORMS}")
    if value.lower() == "now":
        return now.astimezone(UTC)
    relative = _RELATIVE.fullmatch(value.lower())
    if relative:
        if relative["minus"] and relative["ago"]:
            raise ValueError(
                f"time {_shown(text)} says 'before' twice: write {relative['span']} ago or -{relative['span']}"
            )
        seconds = _seconds(relative["span"])
        if seconds <= MAX_DURATION.total_seconds():
            with contextlib.suppress(OverflowError):  # now within a century of year 1
                return (now - timedelta(seconds=seconds)).astimezone(UTC)
        raise ValueError(f"time {_shown(text)} is too far back: at most {format_duration(MAX_DURATION)} ago")
    try:
        return _absolute(value, text, now)
    except OverflowError:
        raise ValueError(f"time {_shown(text)} is out of range (years 1 to 9999)") from None


def _absolute(value: str, text: str, now: datetime) -> datetime:
    match = _ABSOLUTE.fullmatch(value)
    if match is None:
        alone = _TIME_ONLY.fullmatch(value)
        if alone:
            day, clock, rest = now.astimezone(UTC).date().isoformat(), alone["time"], alone["rest"].strip()
            missing = "has no date" if rest else "has no date and no zone"
            raise ValueError(
                f"time {_shown(text)} {missing}: write it in full, like {day}T{clock}Z,"
                f" {day}T{clock}+01:00 or {day} {clock} Europe/Berlin"
            )
        raise ValueError(f"bad time {_shown(text)}: use {INSTANT_FORMS}")
    date, clock, offset, zone = match["date"], match["time"] or "00:00", match["offset"], match["zone"]
    try:
        naive = datetime.fromisoformat(f"{date}T{clock.replace(',', '.')}")
    except ValueError as exc:  # month 13, day 30 of February, hour 24 …
        raise ValueError(f"bad time {_shown(text)}: {exc}") from None
    if offset and zone:
        raise ValueError(f"time {_shown(text)} has both an offset and a zone name: give one of them")
    if offset:
        return naive.replace(tzinfo=_fixed(offset, text)).astimezone(UTC)
    if zone:
        return _localize(naive, _zone(zone), zone)
    raise ValueError(
        f"time {_shown(text)} has no zone: whose {clock} is it? add Z for UTC ({date}T{clock}Z),"
        f" an offset ({date}T{clock}+01:00) or a zone name ({date} {clock} Europe/Berlin)"
    )


def _fixed(offset: str, text: str) -> tzinfo:
    if offset.upper() == "Z":
        return UTC
    digits = offset[1:].replace(":", "")
    hours, minutes, seconds = int(digits[:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"time {_shown(text)} has an impossible offset {offset}: use one like +01:00 or -05:00")
    delta = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return timezone(-delta if offset.startswith("-") else delta)


def _localize(naive: datetime, zone: tzinfo, name: str) -> datetime:
    """``naive`` as a wall-clock time in ``zone``, refused if DST skips or repeats it."""
    earlier, later = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    first, second = earlier.utcoffset(), later.utcoffset()
    if first == second or first is None or second is None:
        return earlier.astimezone(UTC)
    real = [
        moment for moment in (earlier, later) if moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive
    ]
    if len(real) == 1:
        return real[0].astimezone(UTC)
    spec = "minutes" if naive.second == naive.microsecond == 0 else "auto"
    local, iso = naive.isoformat(sep=" ", timespec=spec), naive.isoformat(timespec=spec)
    options = f"{iso}{_offset_text(first)} or {iso}{_offset_text(second)}"
    if real:  # both exist: the clocks went back and this wall time happened twice
        raise ValueError(
            f"{local} happens twice in {name} (clocks go back from {_offset_text(first)} to {_offset_text(second)}):"
            f" write the offset you mean, {options}"
        )
    raise ValueError(
        f"{local} does not exist in {name} (clocks jump from {_offset_text(first)} to {_offset_text(second)}):"
        f" write the offset you mean, {options}"
    )


def _offset_text(delta: timedelta) -> str:
    total = int(delta.total_seconds())
    sign, total = ("-" if total < 0 else "+"), abs(total)
    text = f"{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"
    return text + (f":{total % 60:02d}" if total % 60 else "")


def isoformat(moment: datetime | None) -> str | None:
    """ISO 8601 with offset, seconds precision; ``None`` stays ``None``."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")
