"""One function's recent runs for its dashboard page: counts by status in time buckets, and
duration percentiles.

Buckets are computed in SQL with integer division of epoch milliseconds, which both
databases do the same way (the offsets are never negative, so truncation is flooring);
both reads are range scans of the ``runs_by_function_created`` index. Percentiles are
computed here from a bounded sample of durations: neither database needs an aggregate of
its own for them, and the cost of a busy function's page stays fixed.
"""

from __future__ import annotations

import math

from ..records import FunctionStats, RunCounts, RunStatus, RunWindow
from .conn import Conn

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
# The newest ended runs of the day whose durations the percentiles read, at most.
DURATION_SAMPLE = 10_000
_ENDED = (RunStatus.COMPLETED, RunStatus.FAILED)


def percentile(ordered: list[int], q: float) -> int | None:
    """The nearest-rank ``q``-th percentile of ``ordered`` (ascending): a value it holds."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _counts(
    conn: Conn, slug: str, start: int, bucket_ms: int, buckets: int
) -> tuple[RunCounts, ...]:
    # bucket_ms is one of our constants: inlined, so the division is integer on both sides.
    rows = conn.execute(
        f"SELECT (created_at - ?) / {int(bucket_ms)} AS bucket, status, count(*) AS n"
        " FROM runs WHERE function_slug = ? AND created_at >= ? AND created_at < ?"
        " GROUP BY bucket, status",
        (start, slug, start, start + bucket_ms * buckets),
    ).fetchall()
    counts: list[dict[RunStatus, int]] = [{} for _ in range(buckets)]
    for row in rows:
        counts[int(row["bucket"])][RunStatus(row["status"])] = int(row["n"])
    return tuple(RunCounts(start=start + i * bucket_ms, counts=c) for i, c in enumerate(counts))


def _window(
    start: int,
    end: int,
    bucket_ms: int,
    buckets: tuple[RunCounts, ...],
    durations: list[tuple[int, int]],
) -> RunWindow:
    ordered = sorted(d for created, d in durations if start <= created < end)
    return RunWindow(
        start=start,
        end=end,
        bucket_ms=bucket_ms,
        buckets=buckets,
        ended=sum(b.counts.get(s, 0) for b in buckets for s in _ENDED),
        sampled=len(ordered),
        p50_ms=percentile(ordered, 50),
        p95_ms=percentile(ordered, 95),
    )


def function_stats(conn: Conn, slug: str, now: int) -> FunctionStats:
    minutes_end = (now // MINUTE_MS + 1) * MINUTE_MS
    minutes_start = minutes_end - 60 * MINUTE_MS
    hours_end = (now // HOUR_MS + 1) * HOUR_MS
    hours_start = hours_end - 24 * HOUR_MS
    per_minute = _counts(conn, slug, minutes_start, MINUTE_MS, 60)
    per_hour = _counts(conn, slug, hours_start, HOUR_MS, 24)
    # The hour lies within the day, so the day's newest ended runs hold the hour's too
    # (all of them, unless the hour alone has more than the sample).
    rows = conn.execute(
        "SELECT created_at, ended_at - created_at AS duration FROM runs"
        " WHERE function_slug = ? AND created_at >= ? AND created_at < ?"
        " AND status IN (?, ?) AND ended_at IS NOT NULL"
        " ORDER BY created_at DESC LIMIT ?",
        (slug, hours_start, hours_end, *(s.value for s in _ENDED), DURATION_SAMPLE),
    ).fetchall()
    durations = [(int(r["created_at"]), int(r["duration"])) for r in rows]
    return FunctionStats(
        last_hour=_window(minutes_start, minutes_end, MINUTE_MS, per_minute, durations),
        last_day=_window(hours_start, hours_end, HOUR_MS, per_hour, durations),
    )
