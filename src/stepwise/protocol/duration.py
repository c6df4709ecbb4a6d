"""Go-style duration strings ("1h30m", "300ms", "2d") and timeouts (duration or RFC 3339)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
    "w": 7 * 86400 * 1_000_000_000,
}
# Go's time.Duration is an int64 of nanoseconds; longer durations are invalid there too.
_MAX_NS = (1 << 63) - 1
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w)")


class DurationError(ValueError):
    """A string is neither a duration nor, where allowed, a timestamp."""


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration; ``"0"`` is zero. Negative durations are refused."""
    s = text.strip()
    if s == "0":
        return timedelta(0)
    if not s:
        raise DurationError("empty duration")
    pos = 0
    total_ns = 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            raise DurationError(f"invalid duration {text!r}")
        total_ns += float(match.group(1)) * _UNITS_NS[match.group(2)]
        pos = match.end()
    if pos != len(s):
        raise DurationError(f"invalid duration {text!r}")
    if total_ns > _MAX_NS:
        raise DurationError(f"duration out of range {text!r}")
    return timedelta(microseconds=total_ns / 1000)


def format_duration(value: timedelta | int | float) -> str:
    """Render a duration the way the SDKs send it: whole seconds, largest exact unit.

    Sub-second values round up to ``"1s"`` (the protocol's smallest sleep).
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    whole = max(1, int(-(-seconds // 1)))  # ceil, at least 1s
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 timestamp into an aware UTC datetime."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(s)
    except ValueError as exc:
        raise DurationError(f"invalid timestamp {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def resolve_until(text: str, now: datetime) -> datetime:
    """When a sleep or timeout given as a duration or a timestamp ends.

    Strings of 10 characters or more are tried as timestamps first (as the
    reference server does); anything else is a duration from ``now``.
    """
    if len(text.strip()) >= 10:
        try:
            return parse_timestamp(text)
        except DurationError:
            pass
    return now + parse_duration(text)


def to_iso(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``: ``2024-01-01T00:00:00.000Z``."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )
