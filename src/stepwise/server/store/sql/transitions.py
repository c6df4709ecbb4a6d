"""What one job's outcome, a guarded run change or a checkpoint writes, in one transaction."""

from __future__ import annotations

from typing import Any

from ...engine import dispatch
from ...flow import fanin
from ..records import (
    NO_JOB,
    Checkpoint,
    CheckpointOutcome,
    HistoryEntry,
    HistoryKind,
    LeaseLost,
    RunChange,
    RunStatus,
    RunUpdate,
    Transition,
)
from .conn import Conn, Cursor, Row
from .defers import apply_defer
from .ingest import apply_ingest, clear_debounce, flush_batch
from .jobs import insert_job, write_history
from .leasing import release_slots
from .pauses import consume_pause
from .rows import ACTIVE, dump
from .steps import (
    PlanFlags,
    abandon,
    finish_settle,
    go_on,
    lock_run,
    plan,
    record_result,
    send_settle,
    settle,
)
from .waiters import wake_for_run_slots


def end_run(conn: Conn, run_id: str, keep_job: int | None = None) -> None:
    """A run ended: none of its jobs or pauses may act any more, and its slots are free
    (the best waiter of each of their keys is woken)."""
    wake_for_run_slots(conn, run_id)
    conn.execute("DELETE FROM run_slots WHERE run_id = ?", (run_id,))
    conn.execute(
        "DELETE FROM concurrency_slots WHERE job_id IN (SELECT id FROM jobs WHERE run_id = ?)",
        (run_id,),
    )
    if keep_job is None:
        conn.execute("DELETE FROM jobs WHERE run_id = ?", (run_id,))
    else:
        conn.execute("DELETE FROM jobs WHERE run_id = ? AND id <> ?", (run_id, keep_job))
    conn.execute("DELETE FROM pauses WHERE run_id = ?", (run_id,))
    conn.execute("DELETE FROM open_steps WHERE run_id = ?", (run_id,))


def _status(conn: Conn, run_id: str) -> str | None:
    row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else str(row["status"])


def apply_run_change(conn: Conn, c: RunChange) -> bool:
    """Apply ``c`` if its guards hold; True if it was applied."""
    lock_run(conn, c.run_id)
    if c.require_active and _status(conn, c.run_id) not in ACTIVE:
        return False
    if c.consume_pause is not None and not consume_pause(conn, c.consume_pause):
        return False  # consumed already: a timeout and an event raced, and the other won
    outcomes = [settle(conn, c.run_id, step) for step in c.settled]
    if c.run_update is not None:
        update_run(conn, c.run_id, c.run_update)
    if c.end_run:
        end_run(conn, c.run_id)
    for job in c.new_jobs:
        insert_job(conn, job)
    go_on(conn, c.run_id, outcomes, c.continue_with)
    write_history(conn, c.run_id, c.history)
    if c.ingest is not None:
        apply_ingest(conn, c.ingest)
    return True


def add_history(conn: Conn, run_id: str, entries: list[HistoryEntry]) -> bool:
    """Entries for a run's history, ended or not; False if there is no such run."""
    lock_run(conn, run_id)
    if _status(conn, run_id) is None:
        return False
    write_history(conn, run_id, entries)
    return True


def save_checkpoint(conn: Conn, cp: Checkpoint) -> CheckpointOutcome:
    """Write the steps of a checkpoint, unless its run ended or its dispatch is stale."""
    lock_run(conn, cp.run_id)
    status = _status(conn, cp.run_id)
    if status is None:
        return CheckpointOutcome.NO_RUN
    if status not in ACTIVE:
        return CheckpointOutcome.RUN_ENDED
    if cp.fence is not None:
        job = conn.execute(
            "SELECT generation FROM jobs WHERE id = ? AND run_id = ?",
            (cp.fence.job_id, cp.run_id),
        ).fetchone()
        if dispatch.is_stale(cp.fence, job["generation"] if job is not None else None):
            return CheckpointOutcome.STALE
        # Steps that succeeded reset the budget: the next failure gets every retry again.
        conn.execute("UPDATE jobs SET attempt = 0 WHERE id = ?", (cp.fence.job_id,))
    if status == RunStatus.SCHEDULED.value:
        conn.execute(
            "UPDATE runs SET status = ?, started_at = coalesce(started_at, ?) WHERE id = ?",
            (RunStatus.RUNNING.value, cp.started.at, cp.run_id),
        )
        write_history(conn, cp.run_id, [cp.started])
    for step in cp.settled:
        # Open steps stay open: only the call that was planned for one may close it.
        record_result(conn, cp.run_id, step)
    for change in cp.defers:
        apply_defer(conn, cp.run_id, change)
    return CheckpointOutcome.SAVED


def _started_once(status: str | None, history: list[HistoryEntry]) -> list[HistoryEntry]:
    """A run's start is told once: a checkpoint may have started it during its first call."""
    if status == RunStatus.SCHEDULED.value:
        return history
    return [h for h in history if h.kind is not HistoryKind.RUN_STARTED]


def apply_transition(conn: Conn, t: Transition) -> list[bool]:
    """Apply ``t`` (its lease fenced); which of its ``run_changes`` applied."""
    # A write, not a read: on a backend with row locks it also holds the job until commit.
    # A job that is done is deleted by its fence. Its count is read last, so that on a
    # pipelined connection it comes back with the transition's other reads; a lost lease
    # raises there, and everything written here is rolled back.
    done = t.retry_at is None and t.reschedule_at is None
    if done:
        fence = "DELETE FROM jobs WHERE id = ? AND lease = ?"
    else:
        fence = "UPDATE jobs SET lease = lease WHERE id = ? AND lease = ?"
    fenced = conn.execute(fence, (t.job_id, t.lease))
    try:
        applied = _apply(conn, t)
    except Exception:
        # Whatever went wrong, a job this worker no longer holds is told first.
        _held(fenced, t.job_id)
        raise
    _held(fenced, t.job_id)
    return applied


def apply_without_job(conn: Conn, t: Transition) -> None:
    """Apply the transition of a call that has no job (``NO_JOB``): a durable endpoint's
    checkpoint. There is no lease to fence and no job to keep or retry; the caller has
    locked the run and checked that it is active."""
    assert t.job_id == NO_JOB and t.retry_at is None and t.reschedule_at is None
    _apply(conn, t)


def _held(fenced: Cursor, job_id: int) -> None:
    if fenced.rowcount == 0:
        raise LeaseLost(f"job {job_id} is no longer leased by this worker")


def _apply(conn: Conn, t: Transition) -> list[bool]:
    release_slots(conn, t.job_id)
    outcomes: list[fanin.SettledStep] = []
    opened = False
    run: Row | None = None
    if t.run_id is not None:
        lock_run(conn, t.run_id)
        # The run's row and the settled steps' writes are sent before any of them is
        # read: on a pipelined connection, one round trip for all of them.
        current = conn.execute(
            "SELECT status, request_version, force_step_plan FROM runs WHERE id = ?", (t.run_id,)
        )
        sent = [send_settle(conn, t.run_id, step) for step in t.settled]
        run = current.fetchone()
        write_history(
            conn, t.run_id, _started_once(None if run is None else run["status"], t.history)
        )
        outcomes = [finish_settle(conn, t.run_id, one) for one in sent]
        for change in t.defers:
            apply_defer(conn, t.run_id, change)
        outcomes += [abandon(conn, t.run_id, step_id) for step_id in t.abandoned]
        for step in t.planned:
            opened = plan(conn, t.run_id, step) or opened
    if t.run_update is not None and t.run_id is not None:
        update_run(conn, t.run_id, t.run_update)
    if t.retry_at is not None:
        # A failed attempt: the next dispatch is a new generation.
        conn.execute(
            "UPDATE jobs SET attempt = attempt + 1, run_at = ?, lease = NULL,"
            " generation = generation + 1 WHERE id = ?",
            (t.retry_at, t.job_id),
        )
    elif t.reschedule_at is not None:
        conn.execute(
            "UPDATE jobs SET run_at = ?, lease = NULL WHERE id = ?", (t.reschedule_at, t.job_id)
        )
    if t.clear_run_jobs and t.run_id is not None:
        end_run(conn, t.run_id, keep_job=t.job_id)
    for job in t.new_jobs:
        insert_job(conn, job)
    if t.run_id is not None and not opened and not t.clear_run_jobs:
        # A step planned here calls the SDK again when it settles; going on now as well
        # would only call it early.
        go_on(conn, t.run_id, outcomes, t.continue_with, lambda: _plan_flags(run, t.run_update))
    if t.run_id is not None and t.ending is not None:
        write_history(conn, t.run_id, [*t.ending_notes, t.ending])
    if t.ingest is not None:
        apply_ingest(conn, t.ingest)
    applied = [apply_run_change(conn, change) for change in t.run_changes]
    if t.clear_debounce is not None:
        clear_debounce(conn, *t.clear_debounce)
    if t.flush_batch is not None:
        flush_batch(conn, *t.flush_batch)
    return applied


def _plan_flags(run: Row | None, update: RunUpdate | None) -> PlanFlags | None:
    """The run's plan flags once ``update`` is written, from its row read before."""
    if run is None:
        return None
    version, force = int(run["request_version"]), bool(run["force_step_plan"])
    if update is not None:
        if update.request_version is not None:
            version = update.request_version
        if update.force_step_plan is not None:
            force = update.force_step_plan
    return PlanFlags(version, force)


def update_run(conn: Conn, run_id: str, u: RunUpdate) -> None:
    sets: list[str] = []
    params: list[Any] = []
    if u.status is not None:
        sets.append("status = ?")
        params.append(u.status.value)
    if u.has_output:
        sets.append("output = ?")
        params.append(dump(u.output))
    if u.error is not None:
        sets.append("error = ?")
        params.append(dump(u.error))
    if u.request_version is not None:
        sets.append("request_version = ?")
        params.append(u.request_version)
    if u.force_step_plan is not None:
        sets.append("force_step_plan = ?")
        params.append(int(u.force_step_plan))
    if u.started_at is not None:
        sets.append("started_at = coalesce(started_at, ?)")
        params.append(u.started_at)
    if u.ended_at is not None:
        sets.append("ended_at = ?")
        params.append(u.ended_at)
    if not sets:
        return
    params.append(run_id)
    conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", params)
