"""GCRA (generic cell rate algorithm): ``limit`` events per ``period``, smoothly.

The state is one number per key, the theoretical arrival time (TAT) of the next event
at the steady rate. An event at ``now`` is allowed while the TAT is at most a tolerance
ahead of it. Rate limits use a tolerance of one period minus one emission interval,
which admits ``limit`` events in any window of one period and never more; throttles
allow ``burst`` starts back to back beyond the first, then one per interval.
"""

from __future__ import annotations


def _tolerance(limit: int, period: int, burst: int | None) -> float:
    interval = period / limit
    return period - interval if burst is None else burst * interval


def allow(
    tat: int | None, now: int, limit: int, period: int, burst: int | None = None
) -> int | None:
    """The new TAT if an event at ``now`` is allowed, else None (all times in ms).

    ``burst`` (throttle): how many events may follow the first back to back; by default
    (rate limit) ``limit - 1``.
    """
    interval = period / limit
    current = now if tat is None else max(tat, now)
    if current - now > _tolerance(limit, period, burst):
        return None
    return int(current + interval)


def next_allowed(
    tat: int | None, now: int, limit: int, period: int, burst: int | None = None
) -> int:
    """The earliest time an event refused at ``now`` would be allowed."""
    current = now if tat is None else max(tat, now)
    return max(now, int(current - _tolerance(limit, period, burst)))
