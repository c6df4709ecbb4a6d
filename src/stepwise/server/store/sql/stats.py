"""Counts for the metrics endpoint, read at scrape time so they hold across nodes."""

from __future__ import annotations

from ..records import PauseKind, QueueStats
from .conn import Conn


def queue_stats(conn: Conn, now: int) -> QueueStats:
    # A leased job's run_at is its lease expiry: a job in flight is not due, one whose
    # node died is due again. The range is on the jobs_due index, so sleeping runs
    # (due later) cost nothing here.
    due = conn.execute(
        "SELECT count(*) AS n, min(run_at) AS oldest FROM jobs WHERE run_at <= ?", (now,)
    ).fetchone()
    pauses = dict.fromkeys(PauseKind, 0)
    for row in conn.execute("SELECT kind, count(*) AS n FROM pauses GROUP BY kind").fetchall():
        pauses[PauseKind(row["kind"])] = int(row["n"])
    # On the partial index of waiters: only the parked jobs are read.
    waiting = conn.execute("SELECT count(*) AS n FROM jobs WHERE wait_key IS NOT NULL").fetchone()
    oldest = due["oldest"]
    return QueueStats(
        due_jobs=int(due["n"]),
        oldest_due_at=None if oldest is None else int(oldest),
        waiting_jobs=int(waiting["n"]),
        pauses=pauses,
    )
