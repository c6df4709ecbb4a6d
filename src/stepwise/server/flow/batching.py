"""Batching: events collected per key, started as one run when full or timed out."""

from __future__ import annotations


def append(held: list[str] | None, event_id: str) -> list[str]:
    """The batch's event ids once ``event_id`` joins it (a new batch if none is held)."""
    return [event_id] if held is None else [*held, event_id]


def is_full(event_ids: list[str], max_size: int) -> bool:
    return len(event_ids) >= max_size


def timeout_at(opened_at: int, timeout_ms: int) -> int:
    """When a batch opened at ``opened_at`` starts, however few events it has."""
    return opened_at + timeout_ms


def flushes(held_batch_id: str | None, batch_id: str) -> bool:
    """Whether a timeout for ``batch_id`` still finds its batch open (not started yet)."""
    return held_batch_id == batch_id
