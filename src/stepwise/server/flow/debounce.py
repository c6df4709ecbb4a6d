"""Debounce: one run per key with its latest event, once the key has been quiet.

A key holds the latest event and when its window opened. Each new event moves the
window's end to ``period`` after it, but never past ``timeout`` after the first event.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Held:
    """What a debounce key holds now."""

    event_ts: int
    first_at: int


def accepts(held: Held | None, event_ts: int) -> bool:
    """Whether an event replaces the one held: an older event is ignored (strict order)."""
    return held is None or event_ts >= held.event_ts


def due_at(held: Held | None, now: int, period_ms: int, timeout_ms: int | None) -> int:
    """When the key's run starts if no newer event comes."""
    first_at = now if held is None else held.first_at
    due = now + period_ms
    if timeout_ms is not None:
        due = min(due, first_at + timeout_ms)
    return due


def fired_holds(held_event_id: str | None, fired_event_id: str) -> bool:
    """Whether a debounce that fired with ``fired_event_id`` still owns the key's row.

    A newer event that arrived while the run was starting holds the key now: it stays.
    """
    return held_event_id == fired_event_id
