"""Concurrency limits: how many steps (or runs) of one key may hold a slot at once.

Step level: a leased step of a run takes one slot per limit of its run until its
transition commits, its run ends, or its lease expires; a step whose key is full stays
unleased and is looked at again a little later. Run level: a starting run takes one slot
per limit and keeps it until the run ends, sleeping and waiting included.

The store counts the slots held for each key under ``conn.lock(key)``, so the count
cannot change before the new slot is written, then asks these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# A step blocked by a concurrency limit is looked at again this much later (a finishing
# step also wakes the worker at once, so this bounds the wait only when the wake is missed).
RETRY_MS = 250


def admits(limits: Iterable[tuple[str, int]], in_use: Mapping[str, int]) -> bool:
    """Whether a step may take one more slot of every key it is limited by."""
    return all(in_use[key] < cap for key, cap in limits)


def run_slots_needed(
    limits: Iterable[tuple[str, int]], held: set[str], in_use: Mapping[str, int]
) -> list[str] | None:
    """The run-level slots a starting run must take, or None if a limit is full.

    A slot the run already holds (a retried start) is kept, not taken again.
    """
    needed = []
    for key, cap in limits:
        if key in held:
            continue
        if in_use[key] >= cap:
            return None
        needed.append(key)
    return needed
