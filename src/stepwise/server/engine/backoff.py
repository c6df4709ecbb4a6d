"""How long to wait before the next attempt of a failed job."""

from __future__ import annotations

import email.utils
import random

from ... import protocol

# Delay after attempt n fails, in seconds; later attempts reuse the last entry.
_TABLE = (15, 30, 60, 120, 300, 600, 1200, 2400, 3600, 7200)
_JITTER_S = 30
MIN_RETRY_AFTER_MS = 1_000
MAX_RETRY_AFTER_MS = 24 * 3600 * 1000


def retry_delay_ms(attempt: int, fixed_interval_s: float | None = None) -> int:
    """Backoff after ``attempt`` (0-based) failed: the table plus jitter, or a fixed interval."""
    if fixed_interval_s is not None:
        return int(fixed_interval_s * 1000)
    base = _TABLE[min(attempt, len(_TABLE) - 1)]
    return int((base + random.uniform(0, _JITTER_S)) * 1000)


def clamp_retry_after(now_ms: int, at_ms: int) -> int:
    """A ``Retry-After`` time, kept between 1 s and 24 h from now."""
    return max(now_ms + MIN_RETRY_AFTER_MS, min(at_ms, now_ms + MAX_RETRY_AFTER_MS))


def parse_retry_after(value: str | None, now_ms: int) -> int | None:
    """A ``Retry-After`` header (seconds, or an HTTP or ISO date) as a clamped time; None
    when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        at = now_ms + int(float(value) * 1000)
    except ValueError:
        try:
            when = protocol.parse_timestamp(value)
        except protocol.DurationError:
            try:
                when = email.utils.parsedate_to_datetime(value)  # "Wed, 21 Oct 2026 07:28:00 GMT"
            except (TypeError, ValueError):
                return None
        at = int(when.timestamp() * 1000)
    return clamp_retry_after(now_ms, at)
