"""Concurrency limits: how many steps (or runs) of one key may hold a slot at once.

Step level: a leased step of a run takes one slot per limit of its run until its
transition commits, its run ends, or its lease expires; a step whose key is full stays
unleased and waits for a slot of that key (``flow/waiters.py``). Run level: a starting run
takes one slot per limit and keeps it until the run ends, sleeping and waiting included.

The store counts the slots held for each key under ``conn.lock(key)``, so the count
cannot change before the new slot is written, then asks these functions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping


def full_key(
    limits: Iterable[tuple[str, int]], in_use: Mapping[str, int], held: Collection[str] = ()
) -> str | None:
    """The first key whose limit is reached, or None if one more slot of every key is free.

    A slot already ``held`` (a retried start keeps its run slots) never blocks.
    """
    for key, cap in limits:
        if key not in held and in_use[key] >= cap:
            return key
    return None


def run_slots_needed(limits: Iterable[tuple[str, int]], held: Collection[str]) -> list[str]:
    """The run-level slots a starting run admitted by ``full_key`` takes: those it lacks."""
    return [key for key, _ in limits if key not in held]


def spare(cap: int, in_use: int) -> int:
    """Free slots of a key: how many of its waiters may be woken."""
    return max(0, cap - in_use)
