"""Go-style durations, timestamps and ISO rendering (reference §1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from stepwise.protocol import (
    DurationError,
    format_duration,
    parse_duration,
    parse_timestamp,
    resolve_until,
    to_iso,
)

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("300ms", timedelta(milliseconds=300)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1.5h", timedelta(minutes=90)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("2h45m", timedelta(hours=2, minutes=45)),
        ("1d2h30m10s", timedelta(days=1, hours=2, minutes=30, seconds=10)),
        (".5s", timedelta(milliseconds=500)),
        ("1.s", timedelta(seconds=1)),
        ("1500us", timedelta(microseconds=1500)),
        ("1500µs", timedelta(microseconds=1500)),
        ("1500μs", timedelta(microseconds=1500)),
        ("2000000ns", timedelta(milliseconds=2)),
        ("1m1m", timedelta(minutes=2)),
        ("  10m  ", timedelta(minutes=10)),
        ("2562047h", timedelta(hours=2562047)),  # within Go's int64 range
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "h",
        "10",
        "1x",
        "1 h",
        "1h 30m",
        "-1s",
        "+1s",
        "1h-30m",
        "abc",
        "1H",
        "1.2.3s",
        "s1",
        "1e3s",
        "00",
        "2024-01-01T00:00:00Z",
    ],
)
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["1000000000w", "99999999999999d", "3000000d", "9" * 400 + "h"])
def test_parse_duration_out_of_range_is_duration_error(text: str) -> None:
    with pytest.raises(DurationError, match="out of range"):
        parse_duration(text)


def test_duration_error_is_value_error() -> None:
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (90, "90s"),
        (3600, "1h"),
        (0.2, "1s"),
        (0, "1s"),
        (1, "1s"),
        (60, "1m"),
        (120, "2m"),
        (7200, "2h"),
        (5400, "90m"),
        (86400, "1d"),
        (172800, "2d"),
        (90000, "25h"),
        (59.1, "1m"),
        (61, "61s"),
        (timedelta(minutes=90), "90m"),
        (timedelta(milliseconds=300), "1s"),
        (timedelta(days=7), "7d"),
    ],
)
def test_format_duration(value: timedelta | int | float, expected: str) -> None:
    assert format_duration(value) == expected


def test_format_duration_round_trips_through_parse() -> None:
    for seconds in (1, 59, 60, 61, 3599, 3600, 86399, 86400, 604800):
        assert parse_duration(format_duration(seconds)) == timedelta(seconds=seconds)


# --- timestamps -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123Z", datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
        ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["", "yesterday", "1h30m", "2024-13-01T00:00:00Z"])
def test_parse_timestamp_invalid(text: str) -> None:
    with pytest.raises(DurationError):
        parse_timestamp(text)


# --- resolve_until -----------------------------------------------------------------


def test_resolve_until_duration_is_relative_to_now() -> None:
    assert resolve_until("1h30m", NOW) == NOW + timedelta(hours=1, minutes=30)
    assert resolve_until("0", NOW) == NOW


def test_resolve_until_timestamp_is_absolute() -> None:
    assert resolve_until("2024-06-01T00:00:00Z", NOW) == datetime(2024, 6, 1, tzinfo=UTC)
    assert resolve_until("2023-01-01T00:00:00+01:00", NOW) == datetime(2022, 12, 31, 23, tzinfo=UTC)


def test_resolve_until_long_duration_falls_back_from_timestamp() -> None:
    # Ten characters or more: tried as a timestamp first, then as a duration.
    assert resolve_until("1h30m15s10ms", NOW) == NOW + timedelta(
        hours=1, minutes=30, seconds=15, milliseconds=10
    )


@pytest.mark.parametrize("text", ["soon", "not-a-timestamp", "", "3000000d"])
def test_resolve_until_invalid(text: str) -> None:
    with pytest.raises(DurationError):
        resolve_until(text, NOW)


# --- to_iso ------------------------------------------------------------------------


def test_to_iso_format() -> None:
    assert to_iso(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00.000Z"
    assert to_iso(datetime(2024, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)) == "2024-01-02T03:04:05.678Z"


def test_to_iso_converts_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert to_iso(datetime(2024, 1, 1, 1, 0, 0, 5000, tzinfo=plus_two)) == (
        "2023-12-31T23:00:00.005Z"
    )


def test_to_iso_round_trips_with_parse_timestamp() -> None:
    value = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    assert parse_timestamp(to_iso(value)) == value
