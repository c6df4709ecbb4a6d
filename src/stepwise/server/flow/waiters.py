"""Jobs waiting for a flow-control key: their place in line, and when they are looked at.

A job refused at lease time (its concurrency key is full, or its throttle's turn has not
come) is parked on the key that refused it, and keeps its rank while it waits. A step of a
run ranks as its run does: when the run was created, moved earlier by the run's priority
factor (the reference scores a run's queue items by the run's start less its factor, so
that the steps of older runs go before newer runs start, and priority holds for every
step); a job due before that, or of no run, ranks by when it was due. The lease takes due
jobs by rank, and a woken waiter is due at its rank, so waiters go in rank order: the
highest priority first, then the run that has waited longest.

Waiters are woken by what frees their key, never by a poll:

* a released slot (a step's transition commits, a job is handed back after a fault, a
  run ends) wakes the best-ranked waiter of its key;
* a lease that leaves a key with free slots wakes that many of its best-ranked waiters,
  so a wake-up that found its waiter refused by another key, or a raised limit, is
  passed on to the next in line;
* a throttle frees by time: its best-ranked waiter alone is made due at the key's next
  turn, and the lease that gives it the turn points the next best at the turn after.

A parked job is also looked at again after a while whatever happens (``recheck_at``), so
that a wake-up lost to a race (the woken job's run cancelled before it was leased; on a
shared database, a slot freed on one node while another parked a waiter) stalls nothing
for ever. The delay doubles with the time the job has waited, from ``MIN_RECHECK_MS`` up
to ``MAX_RECHECK_MS``: a deep backlog costs few re-checks, a fresh waiter is soon looked at.
"""

from __future__ import annotations

MIN_RECHECK_MS = 1_000
MAX_RECHECK_MS = 60_000


def rank(due_at: int, kept: int | None, run_rank: int | None = None) -> int:
    """A job's place in line: the rank it kept from an earlier wait; else its run's rank
    (``run_rank``, None for a job that is not a step of a run) unless it was due earlier."""
    if kept is not None:
        return kept
    return due_at if run_rank is None else min(due_at, run_rank)


def since(now: int, kept: int | None) -> int:
    """When the job began to wait: it keeps the time it was first refused."""
    return now if kept is None else kept


def recheck_at(now: int, waiting_since: int) -> int:
    """When a parked job is looked at again if nothing wakes it sooner."""
    waited = now - waiting_since
    return now + max(MIN_RECHECK_MS, min(MAX_RECHECK_MS, waited))
