from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from opsctl.timeutil import (
    INSTANT_FORMS,
    MAX_DURATION,
    format_duration,
    isoformat,
    parse_duration,
    parse_instant,
    validate_timezone,
)

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def refusal(text: str) -> str:
    """The message ``parse_instant`` refuses ``text`` with; it must fit one stderr line."""
    with pytest.raises(ValueError) as info:
        parse_instant(text, now=NOW)
    message = str(info.value)
    assert message and "\n" not in message and "\r" not in message and len(message) < 300
    return message


# ----------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("7d", 604800),
        ("2w", 1209600),
        ("0m", 0),
        ("15M", 900),
        ("  1H30M \t", 5400),
        (45, 45),
        (1.5, 1.5),
        (timedelta(minutes=5), 300),
        ("36525d", 36525 * 86400),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-5m", "negative"),
        (" -1h ", "negative"),
        (-1, "negative"),
        (timedelta(seconds=-1), "negative"),
        ("", "empty"),
        ("   ", "empty"),
        ("999999999d", "too long"),
        ("99999999999w", "too long"),
        ("36525d1s", "too long"),
        ("9" * 60 + "s", "too long"),
        ("9" * 5000 + "s", "too long"),
        (10**30, "too long"),
        (float("inf"), "too long"),
        (float("nan"), "not nan"),
        ("5 minutes", "bad duration"),
        ("1.5h", "bad duration"),
        ("h", "bad duration"),
        ("\u0661\u0665m", "bad duration"),  # Arabic-Indic digits are not ASCII digits
        (True, "not bool"),
        (None, "not NoneType"),
    ],
)
def test_bad_durations_are_one_clear_line(text, reason):
    with pytest.raises(ValueError, match=reason) as info:
        parse_duration(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0m"), (900, "15m"), (5400, "1h30m"), (86400, "24h"), (129600, "36h"), (604800, "7d"), (3 * 86400, "3d")],
)
def test_format_duration(seconds, text):
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text) == timedelta(seconds=seconds)


# ----------------------------------------------------------------- instants


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T02:41:00Z", datetime(2026, 11, 27, 2, 41, tzinfo=UTC)),
        ("2026-11-27T02:41Z", datetime(2026, 11, 27, 2, 41, tzinfo=UTC)),
        ("2026-11-27t02:41z", datetime(2026, 11, 27, 2, 41, tzinfo=UTC)),
        ("2026-11-27T02:41+01:00", datetime(2026, 11, 27, 1, 41, tzinfo=UTC)),
        ("2026-11-27 02:41+01:00", datetime(2026, 11, 27, 1, 41, tzinfo=UTC)),
        ("2026-11-27 02:41:00-0530", datetime(2026, 11, 27, 8, 11, tzinfo=UTC)),
        ("2026-11-27 02:41:00.250Z", datetime(2026, 11, 27, 2, 41, 0, 250000, tzinfo=UTC)),
        ("2026-11-27 02:41 Europe/Berlin", datetime(2026, 11, 27, 1, 41, tzinfo=UTC)),
        ("2026-11-27T02:41:30 Europe/Berlin", datetime(2026, 11, 27, 1, 41, 30, tzinfo=UTC)),
        ("2026-07-01 12:00 Europe/Berlin", datetime(2026, 7, 1, 10, 0, tzinfo=UTC)),
        ("2026-11-27 02:41 UTC", datetime(2026, 11, 27, 2, 41, tzinfo=UTC)),
        ("2026-11-27 02:41 America/New_York", datetime(2026, 11, 27, 7, 41, tzinfo=UTC)),
        ("2026-11-27Z", datetime(2026, 11, 27, tzinfo=UTC)),
        ("now", NOW),
        (" NOW ", NOW),
        ("-15m", NOW - timedelta(minutes=15)),
        ("- 15m", NOW - timedelta(minutes=15)),
        ("15m ago", NOW - timedelta(minutes=15)),
        ("2h ago", NOW - timedelta(hours=2)),
        ("2H AGO", NOW - timedelta(hours=2)),
        ("1h30m ago", NOW - timedelta(hours=1, minutes=30)),
        ("24h", NOW - timedelta(hours=24)),
        ("36525d", NOW - MAX_DURATION),
    ],
)
def test_parse_instant(text, expected):
    parsed = parse_instant(text, now=NOW)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0) and parsed.tzinfo is UTC  # UTC: plain elapsed-time arithmetic


def test_relative_times_count_from_the_given_now_in_any_zone():
    from zoneinfo import ZoneInfo

    berlin_now = datetime(2026, 11, 27, 4, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert parse_instant("30m ago", now=berlin_now) == datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
    with pytest.raises(TypeError):
        parse_instant("now", now=datetime(2026, 11, 27, 3, 0))


@pytest.mark.parametrize(
    "text", ["2026-11-27 02:41", "2026-11-27T02:41:00", "2026-11-27 02:41:00.5", "2026-11-27", "2026-07-01T12:00:00"]
)
def test_a_time_without_a_zone_is_refused(text):
    message = refusal(text)
    assert "has no zone" in message
    assert "Z" in message and "+01:00" in message and "Europe/Berlin" in message


@pytest.mark.parametrize("text", ["02:41", "2:41", "02:41:00", "02:41Z", "02:41 Europe/Berlin"])
def test_a_time_without_a_date_is_refused(text):
    message = refusal(text)
    assert "has no date" in message and "2026-11-27" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "2026-03-29 02:30 Europe/Berlin",
            ["does not exist in Europe/Berlin", "2026-03-29T02:30+01:00", "2026-03-29T02:30+02:00"],
        ),
        (
            "2026-10-25 02:30 Europe/Berlin",
            ["happens twice in Europe/Berlin", "2026-10-25T02:30+02:00", "2026-10-25T02:30+01:00"],
        ),
        (
            "2026-10-25T02:30:15 Europe/Berlin",
            ["happens twice", "2026-10-25T02:30:15+02:00", "2026-10-25T02:30:15+01:00"],
        ),
        (
            "2026-03-08 02:30 America/New_York",
            ["does not exist in America/New_York", "2026-03-08T02:30-05:00", "2026-03-08T02:30-04:00"],
        ),
        (
            "2026-04-05 02:30 Australia/Sydney",
            ["happens twice in Australia/Sydney", "2026-04-05T02:30+11:00", "2026-04-05T02:30+10:00"],
        ),
    ],
)
def test_dst_gaps_and_repeats_are_refused_with_both_offsets(text, words):
    message = refusal(text)
    for word in words:
        assert word in message
    for suggestion in words[1:]:  # and each offered choice is accepted as written
        parse_instant(suggestion, now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-29 01:59 Europe/Berlin", datetime(2026, 3, 29, 0, 59, tzinfo=UTC)),
        ("2026-03-29 03:00 Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        ("2026-10-25 01:59 Europe/Berlin", datetime(2026, 10, 24, 23, 59, tzinfo=UTC)),
        ("2026-10-25 03:00 Europe/Berlin", datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),
    ],
)
def test_times_next_to_a_dst_change_are_unambiguous(text, expected):
    assert parse_instant(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("999999999d", "too far back"),
        ("-99999999999w", "too far back"),
        ("99999999999w ago", "too far back"),
        ("36525d1s", "too far back"),
        ("9" * 60 + "d", "too far back"),
        ("9" * 5000, "too long"),
        ("1" * 100 + "s ago", "too long"),
        ("99999-01-01T00:00:00Z", "bad time"),
        ("+99999-01-01T00:00:00Z", "bad time"),
        ("0000-01-01T00:00Z", "year 0 is out of range"),
        ("0001-01-01T00:00+01:00", "out of range"),
        ("9999-12-31T23:59-01:00", "out of range"),
        ("0001-01-01 00:00 Europe/Berlin", "out of range"),
        ("2026-02-30T00:00Z", "day is out of range"),
        ("2026-11-27T24:00Z", "hour must be in"),
        ("2026-11-27T02:41+24:00", "impossible offset"),
        ("2026-11-27T02:41+01:99", "impossible offset"),
        ("2026-11-27T02:41+01:00 Europe/Berlin", "both an offset and a zone name"),
        ("2026-11-27 02:41 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("2026-11-27 02:41 Europe", "unknown time zone"),
        ("2026-11-27 02:41 localtime", "unknown time zone"),
        ("2026-11-27 02:41 ../../etc/passwd", "bad time"),
        ("2026-11-27 02:41 " + "A" * 60, "too long"),
        ("2026-11-27x02:41Z", "bad time"),
        ("\u0662\u0660\u0662\u0666-11-27T02:41Z", "bad time"),
        ("-15m ago", "twice"),
        ("+15m", "bad time"),
        ("yesterday-ish", "bad time"),
        ("", "empty"),
        ("2026-11-27\n02:41Z", "bad time"),
        ("2026-11-27T02:41Z\x1b[2J", "\\x1b"),  # control characters are escaped, never echoed
    ],
)
def test_absurd_instants_are_one_clear_line(text, reason):
    assert reason in refusal(text)


def test_the_length_bound_ignores_surrounding_spaces():
    padded = "  " * 50 + "2026-11-27T02:41:00Z" + " " * 100
    assert parse_instant(padded, now=NOW) == datetime(2026, 11, 27, 2, 41, tzinfo=UTC)


def test_random_garbage_never_escapes_as_anything_but_value_error():
    rng = random.Random(20261127)
    alphabet = "0123456789-+:.,TZtz smhdwago/EuropeBrlinUTC\u0663\x00\n"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        try:
            parsed = parse_instant(text, now=NOW)
        except ValueError as exc:
            assert "\n" not in str(exc)
        else:
            assert parsed.tzinfo is UTC


def test_every_example_in_the_help_text_parses():
    examples = ["now", "15m ago", "-2h", "24h", "2026-11-27T02:41Z", "2026-11-27 02:41+01:00"]
    examples.append("2026-11-27 02:41 Europe/Berlin")
    for example in examples:
        assert example in INSTANT_FORMS
        parse_instant(example, now=NOW)


@pytest.mark.parametrize("name", ["Europe", "", "x" * 300, "a\x00b", "../etc", "/etc/passwd", "localtime", "utc"])
def test_validate_timezone_refuses_what_zoneinfo_cannot_load(name):
    with pytest.raises(ValueError, match="unknown time zone"):
        validate_timezone(name)


def test_validate_timezone_keeps_good_names():
    assert validate_timezone("Europe/Berlin") == "Europe/Berlin"
    assert validate_timezone("UTC") == "UTC"


def test_importing_timeutil_loads_no_zone_database():
    probe = "import sys, opsctl.timeutil; print(sorted(m for m in sys.modules if m.startswith('zoneinfo')))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_isoformat_has_offset():
    assert isoformat(NOW) == "2026-11-27T03:00:00+00:00"
    assert isoformat(None) is None
