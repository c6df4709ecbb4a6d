"""Jobs waiting for a flow-control key: parking them, waking them in rank order.

What a waiter is, and when one is woken, is ``flow/waiters.py``; here the waiters of a key
are written and read through the ``jobs_waiting`` index, best-ranked first. A parked job
has a ``wait_key``; a woken one is due at its ``wait_rank`` and has no key any more, so
it is woken once.

``row_locks`` (a backend whose transactions run concurrently passes ``leasing``'s
``SKIP_LOCKED``) makes a lease wake only waiters that no other transaction holds: a
lease never waits for a row lock, so it cannot close a cycle with another lease waiting
for the key lock it holds.
"""

from __future__ import annotations

from collections.abc import Iterable

from .conn import Conn

# The best-ranked waiters of a key: their ids, ``?`` for the key and how many.
_BEST = "SELECT j.id FROM jobs j WHERE j.wait_key = ? ORDER BY j.wait_rank, j.id LIMIT ?"

# The best waiter of the key of each slot row ``s`` (NULL where the key has none).
_BEST_OF_SLOT = (
    "(SELECT w.id FROM jobs w WHERE w.wait_key = s.ckey{also} ORDER BY w.wait_rank, w.id LIMIT 1)"
)

# Waking makes a waiter due at its rank. The key is checked again on the row itself: a
# concurrent lease may have taken the waiter (and cleared its wait) meanwhile.
_WAKE = (
    "UPDATE jobs SET run_at = coalesce(wait_rank, run_at), wait_key = NULL"
    " WHERE wait_key IS NOT NULL AND id IN ({ids})"
)


def park(conn: Conn, parked: Iterable[tuple[int, str, int, int, int]]) -> None:
    """Park each (job id, key, rank, waiting since, look again at) until it is woken."""
    conn.executemany(
        "UPDATE jobs SET wait_key = ?, wait_rank = ?, wait_since = ?, run_at = ? WHERE id = ?",
        [(key, rank, since, at, job_id) for job_id, key, rank, since, at in parked],
    )


def wake(conn: Conn, key: str, count: int, *, row_locks: str = "") -> None:
    """Make the ``count`` best-ranked waiters of ``key`` due at their rank."""
    if count > 0:
        conn.execute(_WAKE.format(ids=_BEST + row_locks), (key, count))


def point_at(conn: Conn, key: str, at: int, *, row_locks: str = "") -> None:
    """Have the best-ranked waiter of ``key`` looked at again no later than ``at``.

    It stays parked (and keeps its place) if it is refused again then.
    """
    conn.execute(
        f"UPDATE jobs SET run_at = ? WHERE run_at > ? AND id IN ({_BEST}{row_locks})",
        (at, at, key, 1),
    )


def wake_for_job_slots(conn: Conn, job_id: int) -> None:
    """The step slots ``job_id`` holds are about to be freed: wake a waiter of each key."""
    best = _BEST_OF_SLOT.format(also="")
    conn.execute(
        _WAKE.format(ids=f"SELECT {best} FROM concurrency_slots s WHERE s.job_id = ?"), (job_id,)
    )


def wake_for_run_slots(conn: Conn, run_id: str) -> None:
    """A run ends: wake a waiter of each key of the step and run slots it holds.

    Its own jobs are about to go with it: none of them is woken.
    """
    best = _BEST_OF_SLOT.format(also=" AND (w.run_id IS NULL OR w.run_id <> ?)")
    conn.execute(
        _WAKE.format(
            ids=f"SELECT {best} FROM run_slots s WHERE s.run_id = ?"
            f" UNION ALL SELECT {best} FROM jobs j JOIN concurrency_slots s ON s.job_id = j.id"
            " WHERE j.run_id = ?"
        ),
        (run_id, run_id, run_id, run_id),
    )
