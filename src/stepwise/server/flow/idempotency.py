"""Idempotency: one run per function and key within a window."""

from __future__ import annotations

TTL_MS = 24 * 3600 * 1000


def claimable(expires_at: int | None, now: int) -> bool:
    """Whether a run may claim a key whose current claim expires at ``expires_at``."""
    return expires_at is None or expires_at < now


def expiry(now: int) -> int:
    """When a claim taken at ``now`` lets the key be used again."""
    return now + TTL_MS
