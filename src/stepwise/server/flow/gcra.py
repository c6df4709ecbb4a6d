"""GCRA (generic cell rate algorithm): ``limit`` events per ``period``, smoothly.

The state is one number per key, the theoretical arrival time (TAT) of the next event
at the steady rate. An event at ``now`` is allowed while the TAT is at most one period
minus one emission interval ahead of it, which admits ``limit`` events in any window of
one period and never more.
"""

from __future__ import annotations


def allow(tat: int | None, now: int, limit: int, period: int) -> int | None:
    """The new TAT if an event at ``now`` is allowed, else None (all times in ms)."""
    interval = period / limit
    current = now if tat is None else max(tat, now)
    if current - now > period - interval:
        return None
    return int(current + interval)
