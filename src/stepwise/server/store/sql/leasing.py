"""Leasing due jobs, with the flow control that decides at lease time, and giving them back.

A step whose concurrency key is full stays unleased (its run holds nothing while it
waits); a run over its run-level limit does not start; a throttled first call is moved
to when its turn comes. The decisions are ``flow/concurrency.py`` and ``flow/gcra.py``;
here the state they need is locked, counted and written.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from ...flow import concurrency, gcra
from ..records import Job, JobKind, RunStatus
from .conn import Conn
from .rows import JOB_COLUMNS, job_from_row, load

# How far past the limit the lease looks for work that is not blocked.
LEASE_SCAN_EXTRA = 200

# What a backend with row locks passes as ``row_locks``: concurrent leases skip the due
# jobs another transaction is leasing instead of leasing them twice.
SKIP_LOCKED = " FOR UPDATE OF j SKIP LOCKED"

_LEASE_SELECT = (
    f"SELECT {', '.join('j.' + c.strip() for c in JOB_COLUMNS.split(','))},"
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


def _delay(conn: Conn, job_id: int, run_at: int) -> None:
    conn.execute("UPDATE jobs SET run_at = ? WHERE id = ?", (run_at, job_id))


class _Slots:
    """Slots held per key, counted once per lease under the key's lock, then kept current."""

    def __init__(self, conn: Conn, now: int) -> None:
        self.conn = conn
        self.now = now
        self.steps: dict[str, int] = {}
        self.runs: dict[str, int] = {}

    def step_counts(self, keys: list[str]) -> dict[str, int]:
        for key in keys:
            if key not in self.steps:
                self.conn.lock(slot_lock(key))
                row = self.conn.execute(
                    "SELECT count(*) AS n FROM concurrency_slots WHERE ckey = ? AND expires_at > ?",
                    (key, self.now),
                ).fetchone()
                self.steps[key] = int(row["n"])
        return self.steps

    def run_counts(self, keys: list[str]) -> dict[str, int]:
        for key in keys:
            if key not in self.runs:
                self.conn.lock(run_slot_lock(key))
                row = self.conn.execute(
                    "SELECT count(*) AS n FROM run_slots WHERE ckey = ?", (key,)
                ).fetchone()
                self.runs[key] = int(row["n"])
        return self.runs


def _take_run_slots(conn: Conn, run_id: str, limits: list[tuple[str, int]], slots: _Slots) -> bool:
    """A starting run takes one slot per run-level limit, or none if any limit is full."""
    keys = [key for key, _ in limits]
    in_use = slots.run_counts(keys)
    held = {
        row["ckey"]
        for row in conn.execute("SELECT ckey FROM run_slots WHERE run_id = ?", (run_id,)).fetchall()
    }
    needed = concurrency.run_slots_needed(limits, held, in_use)
    if needed is None:
        return False
    for key in needed:
        conn.execute("INSERT INTO run_slots (run_id, ckey) VALUES (?, ?)", (run_id, key))
        in_use[key] += 1
    return True


def _throttle_turn(conn: Conn, throttle: list[Any], now: int) -> int | None:
    """None if a run may start now (taking its place), else when it may try again."""
    key, cap, period, burst = throttle
    conn.lock(rate_lock(key))
    tat = read_tat(conn, key)
    new_tat = gcra.allow(tat, now, cap, period, burst=burst)
    if new_tat is None:
        return gcra.next_allowed(tat, now, cap, period, burst=burst)
    write_tat(conn, key, new_tat)
    return None


def lease(conn: Conn, now: int, limit: int, lease_ms: int, *, row_locks: str = "") -> list[Job]:
    """Lease up to ``limit`` due jobs, honouring concurrency limits and throttles.

    Each leased step takes one slot per concurrency key until its transition commits.
    A job leased again after its lease ran out starts a new generation: the old
    dispatch may still be alive. ``row_locks`` is appended to the select of due jobs: a
    backend whose transactions run concurrently passes ``SKIP_LOCKED`` (SQLite, with one
    writer, passes nothing).
    """
    rows = conn.execute(_LEASE_SELECT + row_locks, (now, limit + LEASE_SCAN_EXTRA)).fetchall()
    slots = _Slots(conn, now)
    jobs: list[Job] = []
    updates = []
    taken = []
    for row in rows:
        if len(jobs) >= limit:
            break
        job = job_from_row(row)
        status = row["status"]
        limits = [(k, c) for k, c in load(row["concurrency"]) or []]
        steps_run = job.kind in (JobKind.CALL, JobKind.GATEWAY, JobKind.AI_GATEWAY)
        if steps_run and limits:
            in_use = slots.step_counts([key for key, _ in limits])
            if not concurrency.admits(limits, in_use):
                _delay(conn, job.id, now + concurrency.RETRY_MS)
                continue
        starting = job.kind is JobKind.CALL and status == RunStatus.SCHEDULED.value
        run_limits = [(k, c) for k, c in load(row["run_concurrency"]) or []]
        if (
            starting
            and run_limits
            and not _take_run_slots(conn, str(job.run_id), run_limits, slots)
        ):
            _delay(conn, job.id, now + concurrency.RETRY_MS)
            continue
        throttle = load(row["throttle"])
        if throttle and starting and job.attempt == 0:
            turn = _throttle_turn(conn, throttle, now)
            if turn is not None:
                _delay(conn, job.id, turn)
                continue
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
            "UPDATE jobs SET lease = ?, run_at = ?, generation = ? WHERE id = ?", updates
        )
    if taken:
        conn.executemany(
            "INSERT INTO concurrency_slots (job_id, ckey, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (job_id, ckey) DO UPDATE SET expires_at = excluded.expires_at",
            taken,
        )
    return jobs


def release_slots(conn: Conn, job_id: int) -> None:
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
