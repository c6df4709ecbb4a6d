"""How long to wait before the next attempt of a failed job."""

from __future__ import annotations

import random

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
