"""A run's defers: stored once per id, aborted in place, read with the run's state.

Like a step's result, a defer is written by the transition (or checkpoint) that carries
its op, under the run's lock, so two calls of the same run never both count themselves
under the per-run limit.
"""

from __future__ import annotations

from ..records import DeferChange, DeferRecord, DeferStatus
from .conn import Conn
from .jobs import write_history
from .rows import chunks, dump, load, marks

DEFER_COLUMNS = "hashed_id, fn_slug, status, user_id, input, meta"


def apply_defer(conn: Conn, run_id: str, change: DeferChange) -> bool:
    """Apply one DeferAdd or DeferAbort; True if it changed the run's defers."""
    changed: bool | None
    if change.abort:
        changed = _abort(conn, run_id, change.record, change.at)
    else:
        changed = _add(conn, run_id, change, change.at)
    if changed is None:
        write_history(conn, run_id, list(change.refused))
        return False
    if changed:
        write_history(conn, run_id, list(change.history))
    return changed


def _insert(conn: Conn, run_id: str, record: DeferRecord, now: int) -> bool:
    cursor = conn.execute(
        "INSERT INTO defers (run_id, hashed_id, seq, user_id, fn_slug, input, meta, status,"
        " created_at) SELECT ?, ?, coalesce(max(seq), -1) + 1, ?, ?, ?, ?, ?, ?"
        " FROM defers WHERE run_id = ? ON CONFLICT (run_id, hashed_id) DO NOTHING",
        (
            run_id,
            record.hashed_id,
            record.user_id,
            record.fn_slug,
            None if record.input is None else dump(record.input),
            None if record.meta is None else dump(record.meta),
            record.status.value,
            now,
            run_id,
        ),
    )
    return cursor.rowcount == 1


def _add(conn: Conn, run_id: str, change: DeferChange, now: int) -> bool | None:
    """Store a defer unless its id has one; None if the run's limits refuse it."""
    if conn.execute(
        "SELECT 1 FROM defers WHERE run_id = ? AND hashed_id = ?",
        (run_id, change.record.hashed_id),
    ).fetchone():
        return False
    row = conn.execute(
        "SELECT count(*) AS n, coalesce(sum(length(input)), 0) AS size FROM defers"
        " WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    size = 0 if change.record.input is None else len(dump(change.record.input))
    if int(row["n"]) >= change.max_count or int(row["size"]) + size > change.max_input_bytes:
        return None
    return _insert(conn, run_id, change.record, now)


def _abort(conn: Conn, run_id: str, record: DeferRecord, now: int) -> bool:
    """Abort a defer still to start; one the run has not added yet is stored aborted, so
    that the SDK, told so, does not add it on a later call."""
    updated = conn.execute(
        "UPDATE defers SET status = ? WHERE run_id = ? AND hashed_id = ? AND status = ?",
        (DeferStatus.ABORTED.value, run_id, record.hashed_id, DeferStatus.AFTER_RUN.value),
    )
    if updated.rowcount == 1:
        return True
    return _insert(conn, run_id, record, now)


def load_defers(conn: Conn, run_ids: list[str]) -> dict[str, list[DeferRecord]]:
    """Each run's defers, in the order they were added."""
    out: dict[str, list[DeferRecord]] = {run_id: [] for run_id in run_ids}
    for chunk in chunks(sorted(set(run_ids))):
        for row in conn.execute(
            f"SELECT run_id, {DEFER_COLUMNS} FROM defers"
            f" WHERE run_id IN ({marks(len(chunk))}) ORDER BY run_id, seq",
            chunk,
        ).fetchall():
            out.setdefault(row["run_id"], []).append(
                DeferRecord(
                    hashed_id=row["hashed_id"],
                    fn_slug=row["fn_slug"],
                    status=DeferStatus(row["status"]),
                    user_id=row["user_id"],
                    input=load(row["input"]),
                    meta=load(row["meta"]),
                )
            )
    return out
