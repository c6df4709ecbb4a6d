"""Persistence for keeping a store healthy over time, on every backend.

Lease renewal (the heartbeat of jobs whose call is in flight), the registry version
that tells every node when the function set changed, and history retention. Each
function takes a connection whose rows read by column name and runs inside the
caller's transaction; the SQL is what both SQLite and PostgreSQL accept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ....protocol.ids import encode_ulid
from .conn import Conn

# Run statuses, as stored.
_ACTIVE = ("Scheduled", "Running")
_FINISHED = ("Completed", "Failed", "Cancelled", "Skipped")
REGISTRY_COUNTER = "registry"
# A batch run is named by a ULID taken when its first event arrived, and collects the
# events that arrive until its window closes; an event younger than its batch run by more
# than this is in no batch (batch windows are seconds to minutes).
BATCH_LOOKBACK_MS = 24 * 3600 * 1000


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


# ---- leases ---------------------------------------------------------------------------


def renew_leases(conn: Conn, leases: Sequence[tuple[int, str]], until: int) -> set[int]:
    """Extend each (job id, lease token) still ours to ``until``; the job ids no longer ours.

    A lease that ran out but was not taken over is still ours: nobody else holds the job.
    The concurrency slots a job holds live as long as its lease.
    """
    lost: set[int] = set()
    for job_id, token in leases:
        cur = conn.execute(
            "UPDATE jobs SET run_at = ? WHERE id = ? AND lease = ?", (until, job_id, token)
        )
        if cur.rowcount == 0:
            lost.add(job_id)
            continue
        conn.execute(
            "UPDATE concurrency_slots SET expires_at = ? WHERE job_id = ? AND expires_at < ?",
            (until, job_id, until),
        )
    return lost


# ---- the function registry ---------------------------------------------------------------


def bump_registry_version(conn: Conn) -> None:
    """Tell every node that the function set changed (in the transaction that changed it)."""
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1)"
        " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1",
        (REGISTRY_COUNTER,),
    )


def registry_version(conn: Conn) -> int:
    row = conn.execute("SELECT value FROM counters WHERE name = ?", (REGISTRY_COUNTER,)).fetchone()
    return int(row["value"]) if row is not None else 0


# ---- history retention -----------------------------------------------------------------------


def purge_finished(conn: Conn, before: int, limit: int) -> int:
    """Delete up to ``limit`` runs that finished before ``before``, with all they left.

    Their history, step results, pauses, slots and any job left behind go with them. Then
    up to ``limit`` events received before ``before`` that no stored run needs any more,
    and idempotency keys that expired before ``before``. Returns how many rows of runs and
    events were deleted, so a caller can go on while a batch comes back full.
    """
    run_ids = [
        row["id"]
        for row in conn.execute(
            f"SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at < ?"
            f" AND status IN ({_marks(_FINISHED)}) ORDER BY ended_at LIMIT ?",
            (before, *_FINISHED, limit),
        ).fetchall()
    ]
    if run_ids:
        ids = _marks(run_ids)
        conn.execute(
            f"DELETE FROM concurrency_slots WHERE job_id IN"
            f" (SELECT id FROM jobs WHERE run_id IN ({ids}))",
            run_ids,
        )
        for table in (
            "jobs",
            "pauses",
            "open_steps",
            "run_slots",
            "history",
            "steps",
            "defers",
            "endpoint_runs",
            "endpoint_streams",
        ):
            conn.execute(f"DELETE FROM {table} WHERE run_id IN ({ids})", run_ids)
        conn.execute(f"DELETE FROM runs WHERE id IN ({ids})", run_ids)
    events = _purge_events(conn, before, limit)
    conn.execute(
        "DELETE FROM idempotency WHERE (function_id, key) IN"
        " (SELECT function_id, key FROM idempotency WHERE expires_at < ? LIMIT ?)",
        (before, limit),
    )
    return len(run_ids) + events


def _purge_events(conn: Conn, before: int, limit: int) -> int:
    """Delete old events (every copy) that no stored run and no open batch or debounce needs."""
    rows = conn.execute(
        "SELECT e.internal_id, e.received_at FROM events e"
        " WHERE e.copy = 0 AND e.received_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = e.internal_id)"
        " AND NOT EXISTS (SELECT 1 FROM debounces d WHERE d.event_id = e.internal_id)"
        " ORDER BY e.internal_id LIMIT ?",
        (before, limit),
    ).fetchall()
    if not rows:
        return 0
    candidates = {row["internal_id"] for row in rows}
    oldest = min(row["received_at"] for row in rows)
    newest = max(row["received_at"] for row in rows)
    # A run lists events beyond the one that started it only when it is a batch: look for
    # active ones among the runs started while these events could still join a batch.
    needed: set[str] = set()
    for row in conn.execute(
        f"SELECT event_ids FROM runs WHERE id >= ? AND id <= ? AND status IN ({_marks(_ACTIVE)})",
        (
            encode_ulid(max(oldest - BATCH_LOOKBACK_MS, 0), bytes(10)),
            encode_ulid(newest + 1, b"\xff" * 10),
            *_ACTIVE,
        ),
    ).fetchall():
        needed.update(orjson.loads(row["event_ids"]))
    for row in conn.execute("SELECT event_ids FROM batches").fetchall():
        needed.update(orjson.loads(row["event_ids"]))
    doomed = sorted(candidates - needed)
    if doomed:
        conn.execute(f"DELETE FROM events WHERE internal_id IN ({_marks(doomed)})", doomed)
    return len(doomed)
