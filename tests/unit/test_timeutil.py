from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsctl.timeutil import format_duration, isoformat, parse_duration, parse_instant

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600), ("0m", 0), (45, 45)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5 minutes", "1.5h", "", "h", "-5m", True])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0m"), (900, "15m"), (5400, "1h30m"), (86400, "24h"), (129600, "36h"), (604800, "7d"), (3 * 86400, "3d")],
)
def test_format_duration(seconds, text):
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("24h", NOW - timedelta(hours=24)),
        ("-2h", NOW - timedelta(hours=2)),
        ("30m ago", NOW - timedelta(minutes=30)),
        ("2026-11-25T10:00:00Z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("2026-11-25T11:00:00+01:00", datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ],
)
def test_parse_instant(text, expected):
    assert parse_instant(text, now=NOW) == expected


def test_naive_instant_needs_a_zone():
    with pytest.raises(ValueError, match="has no zone"):
        parse_instant("2026-11-25T10:00:00", now=NOW)
    berlin = parse_instant("2026-07-01T12:00:00", now=NOW, default_tz="Europe/Berlin")
    assert berlin.utcoffset() == timedelta(hours=2)


def test_isoformat_has_offset():
    assert isoformat(NOW) == "2026-11-26T12:00:00+00:00"
    assert isoformat(None) is None
