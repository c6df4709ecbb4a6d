"""A run's steps: results written once, open steps planned once, and the fan-in join.

Every function here expects the run's lock (``lock_run``) to be held: two transactions
settling the last two steps of a parallel batch must not both count the other's step as
still open, nor both as closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...flow import fanin
from ..records import NewJob, PlannedStep, Settled
from .conn import Conn, Cursor, Row
from .ingest import apply_ingest
from .jobs import insert_job, write_history
from .pauses import insert_pause
from .rows import dump


def lock_run(conn: Conn, run_id: str) -> None:
    conn.lock(f"run:{run_id}")


def _insert_result(conn: Conn, run_id: str, step: Settled) -> Cursor:
    # The next sequence number is read in the insert itself: one round trip, not two (the
    # run's lock keeps it exact). SQLite needs the WHERE to parse ON CONFLICT after a SELECT.
    return conn.execute(
        "INSERT INTO steps (run_id, step_id, seq, memo)"
        " SELECT ?, ?, coalesce(max(seq), -1) + 1, ? FROM steps WHERE run_id = ?"
        " ON CONFLICT (run_id, step_id) DO NOTHING",
        (run_id, step.step_id, dump(step.memo), run_id),
    )


def _told(conn: Conn, run_id: str, step: Settled, inserted: Cursor) -> bool:
    fresh = inserted.rowcount == 1
    if fresh:
        # A step's ending is told once, with the result that ended it.
        write_history(conn, run_id, step.history)
    return fresh


def record_result(conn: Conn, run_id: str, step: Settled) -> bool:
    """Store a step's result unless it has one (the first one wins); True if stored now."""
    return _told(conn, run_id, step, _insert_result(conn, run_id, step))


@dataclass(frozen=True, slots=True)
class Settling:
    """A step's result and the deletion of its open row, sent; their results not read."""

    step: Settled
    inserted: Cursor
    closed: Cursor


def send_settle(conn: Conn, run_id: str, step: Settled) -> Settling:
    """The writes of ``settle``, sent: on a pipelined connection the next read brings
    their results back with its own."""
    return Settling(
        step,
        _insert_result(conn, run_id, step),
        conn.execute(
            "DELETE FROM open_steps WHERE run_id = ? AND step_id = ? RETURNING batch, race",
            (run_id, step.step_id),
        ),
    )


def finish_settle(conn: Conn, run_id: str, sent: Settling) -> fanin.SettledStep:
    """``settle`` after ``send_settle``: read what the writes did, tell a fresh ending."""
    open_row = sent.closed.fetchone()
    return _settled(open_row, fresh=_told(conn, run_id, sent.step, sent.inserted))


def settle(conn: Conn, run_id: str, step: Settled) -> fanin.SettledStep:
    """Store a step's result (the first one wins) and close the step if it was open."""
    return finish_settle(conn, run_id, send_settle(conn, run_id, step))


def abandon(conn: Conn, run_id: str, step_id: str) -> fanin.SettledStep:
    """Close an open step that settled without a result (the app no longer has it)."""
    open_row = conn.execute(
        "DELETE FROM open_steps WHERE run_id = ? AND step_id = ? RETURNING batch, race",
        (run_id, step_id),
    ).fetchone()
    return _settled(open_row, fresh=False)


def _settled(open_row: Row | None, *, fresh: bool) -> fanin.SettledStep:
    if open_row is None:
        return fanin.SettledStep(fresh=fresh, was_open=False)
    return fanin.SettledStep(
        fresh=fresh, was_open=True, batch=bool(open_row["batch"]), race=bool(open_row["race"])
    )


def plan(conn: Conn, run_id: str, step: PlannedStep) -> bool:
    """Open a step with everything it waits on; False if it has a result or is open."""
    if conn.execute(
        "SELECT 1 FROM steps WHERE run_id = ? AND step_id = ?"
        " UNION ALL SELECT 1 FROM open_steps WHERE run_id = ? AND step_id = ? LIMIT 1",
        (run_id, step.step_id, run_id, step.step_id),
    ).fetchone():
        return False
    conn.execute(
        "INSERT INTO open_steps (run_id, step_id, batch, race) VALUES (?, ?, ?, ?)",
        (run_id, step.step_id, int(step.batch), int(step.race)),
    )
    for job in step.jobs:
        insert_job(conn, job)
    if step.pause is not None:
        insert_pause(conn, step.pause)
    if step.ingest is not None:
        apply_ingest(conn, step.ingest)
    write_history(conn, run_id, step.history)
    return True


@dataclass(frozen=True, slots=True)
class PlanFlags:
    """The run's columns that decide whether step planning is forced after a call."""

    request_version: int
    force_step_plan: bool


def read_plan_flags(conn: Conn, run_id: str) -> PlanFlags | None:
    row = conn.execute(
        "SELECT request_version, force_step_plan FROM runs WHERE id = ?", (run_id,)
    ).fetchone()
    if row is None:
        return None
    return PlanFlags(int(row["request_version"]), bool(row["force_step_plan"]))


def go_on(
    conn: Conn,
    run_id: str,
    settled: list[fanin.SettledStep],
    next_call: NewJob | None,
    flags: Callable[[], PlanFlags | None] | None = None,
) -> None:
    """Add the run's next call if the fan-in rule says what settled lets it go on.

    ``flags``: the run's current ``PlanFlags`` if the caller has them; else they are read.
    """
    if next_call is None or not settled:
        return

    def batch_steps_left() -> int:
        row = conn.execute(
            "SELECT count(*) AS n FROM open_steps WHERE run_id = ? AND batch = 1 AND race = 0",
            (run_id,),
        ).fetchone()
        return int(row["n"])

    if not fanin.goes_on(settled, batch_steps_left):
        return
    insert_job(conn, next_call)
    current = flags() if flags is not None else read_plan_flags(conn, run_id)
    if (
        current is not None
        and current.force_step_plan
        and fanin.resets_step_planning(current.request_version)
    ):
        conn.execute("UPDATE runs SET force_step_plan = 0 WHERE id = ?", (run_id,))
