"""Leasing due jobs, with the flow control that decides at lease time, and giving them back.

A step whose concurrency key is full stays unleased (its run holds nothing while it
waits); a run over its run-level limit does not start; a throttled first call waits for
its turn. Each of them is parked on the key that refused it, with its rank, until that key
frees (``sql/waiters.py``). The decisions are ``flow/concurrency.py``, ``flow/gcra.py``
and ``flow/waiters.py``; here the state they need is locked, counted and written.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from ...flow import concurrency, gcra, waiters
from ..records import Job, JobKind, RunStatus
from .conn import Conn
from .rows import JOB_COLUMNS, job_from_row, load
from .waiters import park, point_at, wake, wake_for_job_slots

# How far past the limit the lease looks for work that is not blocked.
LEASE_SCAN_EXTRA = 200

# What a backend with row locks passes as ``row_locks``: concurrent leases skip the due
# jobs another transaction is leasing instead of leasing them twice.
SKIP_LOCKED = " FOR UPDATE OF j SKIP LOCKED"

_LEASE_SELECT = (
    f"SELECT {', '.join('j.' + c.strip() for c in JOB_COLUMNS.split(','))},"
    " j.wait_rank, j.wait_since, coalesce(r.queue_rank, r.created_at) AS run_rank,"
    " r.concurrency, r.throttle, r.status, r.run_concurrency"
    " FROM jobs j LEFT JOIN runs r ON r.id = j.run_id WHERE j.run_at <= ? ORDER BY j.run_at LIMIT ?"
)


def slot_lock(key: str) -> str:
    return f"slots:{key}"


def run_slot_lock(key: str) -> str:
    return f"run_slots:{key}"


def rate_lock(key: str) -> str:
    """Throttles and rate limits keep their state in the same table: one lock space."""
    return f"rate:{key}"


def read_tat(conn: Conn, key: str) -> int | None:
    row = conn.execute("SELECT tat FROM rate_limits WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row["tat"])


def write_tat(conn: Conn, key: str, tat: int) -> None:
    conn.execute(
        "INSERT INTO rate_limits (key, tat) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
        (key, tat),
    )


class _Slots:
    """Slots held per key, counted once per lease under the key's lock, then kept current."""

    def __init__(self, conn: Conn, now: int) -> None:
        self.conn = conn
        self.now = now
        self.steps: dict[str, int] = {}
        self.runs: dict[str, int] = {}
        # The smallest limit seen for each key (a re-synced function may have changed it).
        self.caps: dict[str, int] = {}

    def _seen(self, limits: list[tuple[str, int]]) -> None:
        for key, cap in limits:
            self.caps[key] = min(cap, self.caps.get(key, cap))

    def step_counts(self, limits: list[tuple[str, int]]) -> dict[str, int]:
        self._seen(limits)
        for key, _ in limits:
            if key not in self.steps:
                self.conn.lock(slot_lock(key))
                row = self.conn.execute(
                    "SELECT count(*) AS n FROM concurrency_slots WHERE ckey = ? AND expires_at > ?",
                    (key, self.now),
                ).fetchone()
                self.steps[key] = int(row["n"])
        return self.steps

    def run_counts(self, limits: list[tuple[str, int]]) -> dict[str, int]:
        self._seen(limits)
        for key, _ in limits:
            if key not in self.runs:
                self.conn.lock(run_slot_lock(key))
                row = self.conn.execute(
                    "SELECT count(*) AS n FROM run_slots WHERE ckey = ?", (key,)
                ).fetchone()
                self.runs[key] = int(row["n"])
        return self.runs

    def spare(self) -> dict[str, int]:
        """Each key counted with free slots left, and how many."""
        free = {}
        for counts in (self.steps, self.runs):
            for key, in_use in counts.items():
                if n := concurrency.spare(self.caps[key], in_use):
                    free[key] = n
        return free


def _run_slots_held(conn: Conn, run_id: str) -> set[str]:
    rows = conn.execute("SELECT ckey FROM run_slots WHERE run_id = ?", (run_id,)).fetchall()
    return {row["ckey"] for row in rows}


def _throttle_turn(conn: Conn, throttle: list[Any], now: int) -> tuple[bool, int]:
    """Whether a run may start now (taking its place), and when the next one may."""
    key, cap, period, burst = throttle
    conn.lock(rate_lock(key))
    tat = read_tat(conn, key)
    new_tat = gcra.allow(tat, now, cap, period, burst=burst)
    if new_tat is None:
        return False, gcra.next_allowed(tat, now, cap, period, burst=burst)
    write_tat(conn, key, new_tat)
    return True, gcra.next_allowed(new_tat, now, cap, period, burst=burst)


# The jobs that run a run's steps: they take concurrency slots, and rank as their run does.
_STEP_KINDS = frozenset({JobKind.CALL.value, JobKind.GATEWAY.value, JobKind.AI_GATEWAY.value})


def _rank(row: Any) -> int:
    """A due job's rank (``flow/waiters.py``): a waiter looked at again (or pointed at a
    throttle's turn) goes by the rank it kept, not by when it was looked at again."""
    run_rank = row["run_rank"] if row["kind"] in _STEP_KINDS else None
    return waiters.rank(row["run_at"], row["wait_rank"], run_rank)


def lease(conn: Conn, now: int, limit: int, lease_ms: int, *, row_locks: str = "") -> list[Job]:
    """Lease up to ``limit`` due jobs, honouring concurrency limits and throttles.

    Each leased step takes one slot per concurrency key until its transition commits.
    A job leased again after its lease ran out starts a new generation: the old
    dispatch may still be alive. A refused job is parked on the key that refused it. Then
    the waiters of every key left with free slots are woken, and a throttle's best waiter
    is pointed at its next turn. ``row_locks`` is appended to the select of due jobs and
    of waiters: a backend whose transactions run concurrently passes ``SKIP_LOCKED``
    (SQLite, with one writer, passes nothing).
    """
    rows = conn.execute(_LEASE_SELECT + row_locks, (now, limit + LEASE_SCAN_EXTRA)).fetchall()
    slots = _Slots(conn, now)
    jobs: list[Job] = []
    updates = []
    taken = []
    parked: list[tuple[int, str, int, int, int]] = []
    turns: dict[str, int] = {}

    def wait(job: Job, row: Any, key: str) -> None:
        since = waiters.since(now, row["wait_since"])
        parked.append((job.id, key, _rank(row), since, waiters.recheck_at(now, since)))

    for row in sorted(rows, key=_rank):
        if len(jobs) >= limit:
            break
        job = job_from_row(row)
        limits = [(k, c) for k, c in load(row["concurrency"]) or []]
        steps_run = job.kind.value in _STEP_KINDS
        if steps_run and limits:
            full = concurrency.full_key(limits, slots.step_counts(limits))
            if full is not None:
                wait(job, row, full)
                continue
        starting = job.kind is JobKind.CALL and row["status"] == RunStatus.SCHEDULED.value
        run_limits = [(k, c) for k, c in load(row["run_concurrency"]) or []] if starting else []
        held: set[str] = set()
        if run_limits:
            in_use = slots.run_counts(run_limits)
            held = _run_slots_held(conn, str(job.run_id))
            full = concurrency.full_key(run_limits, in_use, held)
            if full is not None:
                wait(job, row, full)
                continue
        throttle = load(row["throttle"])
        if throttle and starting and job.attempt == 0:
            admitted, turns[throttle[0]] = _throttle_turn(conn, throttle, now)
            if not admitted:
                wait(job, row, throttle[0])
                continue
        # Run slots are taken once nothing else holds the run back.
        for key in concurrency.run_slots_needed(run_limits, held):
            conn.execute("INSERT INTO run_slots (run_id, ckey) VALUES (?, ?)", (job.run_id, key))
            slots.runs[key] += 1
        token = secrets.token_hex(8)
        generation = job.generation + (1 if job.lease else 0)
        updates.append((token, now + lease_ms, generation, job.id))
        if steps_run:
            for key, _ in limits:
                slots.steps[key] += 1
                taken.append((job.id, key, now + lease_ms))
        # run_at stays the time it was due, not its lease expiry.
        jobs.append(dataclasses.replace(job, lease=token, generation=generation))
    if updates:
        conn.executemany(
            "UPDATE jobs SET lease = ?, run_at = ?, generation = ?,"
            " wait_key = NULL, wait_rank = NULL, wait_since = NULL WHERE id = ?",
            updates,
        )
    if taken:
        conn.executemany(
            "INSERT INTO concurrency_slots (job_id, ckey, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (job_id, ckey) DO UPDATE SET expires_at = excluded.expires_at",
            taken,
        )
    # Waiters are touched once the leased jobs no longer wait: none of them is woken again.
    if parked:
        park(conn, parked)
    for key, at in turns.items():
        point_at(conn, key, at, row_locks=row_locks)
    for key, free in slots.spare().items():
        wake(conn, key, free, row_locks=row_locks)
    return jobs


def release_slots(conn: Conn, job_id: int) -> None:
    """Free the step slots ``job_id`` holds, waking the best waiter of each key."""
    wake_for_job_slots(conn, job_id)
    conn.execute("DELETE FROM concurrency_slots WHERE job_id = ?", (job_id,))


def release_after_fault(conn: Conn, job_id: int, lease_token: str, run_at: int) -> bool:
    """The server failed handling a job: hand it back for another try at ``run_at``.

    Its concurrency slots are freed meanwhile; False if the lease was no longer ours.
    """
    cur = conn.execute(
        "UPDATE jobs SET lease = NULL, run_at = ?, faults = faults + 1, generation = generation + 1"
        " WHERE id = ? AND lease = ?",
        (run_at, job_id, lease_token),
    )
    if cur.rowcount == 0:
        return False
    release_slots(conn, job_id)
    return True


def next_due_at(conn: Conn) -> int | None:
    row = conn.execute("SELECT min(run_at) AS at FROM jobs").fetchone()
    return None if row is None else row["at"]


def recover_leases(conn: Conn, now: int) -> int:
    """Every leased job due now, its lease dropped and its concurrency slots freed.

    A dispatch cut off by a stop is a lost one: its job starts a new generation.
    """
    cur = conn.execute(
        "UPDATE jobs SET run_at = CASE WHEN run_at < ? THEN run_at ELSE ? END, lease = NULL,"
        " generation = generation + 1 WHERE lease IS NOT NULL",
        (now, now),
    )
    conn.execute("DELETE FROM concurrency_slots")
    return cur.rowcount
