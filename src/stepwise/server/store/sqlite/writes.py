"""What one transaction writes: leases, ingests, transitions and guarded run changes.

Every function here runs on the writer thread inside a transaction it does not own; the
group-commit writer decides when that transaction commits.
"""

from __future__ import annotations

import dataclasses
import secrets
import sqlite3
from collections.abc import Iterable
from typing import Any

from ...engine import dispatch
from ...flow import fanin, gcra
from ..records import (
    Checkpoint,
    CheckpointOutcome,
    EventRecord,
    HistoryEntry,
    HistoryKind,
    Ingest,
    Job,
    JobKind,
    LeaseLost,
    NewJob,
    NewPause,
    NewRun,
    PlannedStep,
    RunChange,
    RunStatus,
    RunUpdate,
    Settled,
    SignalTaken,
    Transition,
)
from .rows import (
    EVENT_COLUMNS,
    JOB_COLUMNS,
    chunks,
    dump,
    job_from_row,
    load,
)

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000


def cron_key(slug: str, expr: str) -> str:
    return f"cron:{slug}:{expr}"


# A step blocked by a concurrency limit is looked at again this much later (a finishing
# step also wakes the worker at once, so this bounds the wait only when the wake is missed).
CONCURRENCY_RETRY_MS = 250
# How far past the limit the lease looks for work that is not blocked.
LEASE_SCAN_EXTRA = 200


_JOB_FIELDS = len(JOB_COLUMNS.split(","))
_LEASE_SELECT = (
    f"SELECT {', '.join('j.' + c.strip() for c in JOB_COLUMNS.split(','))},"
    " r.concurrency, r.throttle, r.status, r.run_concurrency"
    " FROM jobs j LEFT JOIN runs r ON r.id = j.run_id WHERE j.run_at <= ? ORDER BY j.run_at LIMIT ?"
)


def lease(conn: sqlite3.Connection, now: int, limit: int, lease_ms: int) -> list[Job]:
    """Lease up to ``limit`` due jobs, honouring concurrency limits and throttles.

    A step whose key is at its limit stays unleased (its run holds nothing while it
    waits); a throttled first call is moved to when its turn comes. Each leased step
    takes one slot per concurrency key until its transition commits. A job leased again
    after its lease ran out starts a new generation: the old dispatch may still be alive.
    """
    rows = conn.execute(_LEASE_SELECT, (now, limit + LEASE_SCAN_EXTRA)).fetchall()
    in_use: dict[str, int] = {}
    run_in_use: dict[str, int] = {}
    jobs: list[Job] = []
    updates = []
    slots = []
    for row in rows:
        if len(jobs) >= limit:
            break
        job = job_from_row(row[:_JOB_FIELDS])
        concurrency, throttle_row, status, run_concurrency = row[_JOB_FIELDS:]
        limits = load(concurrency) if concurrency else []
        steps_run = job.kind in (JobKind.CALL, JobKind.GATEWAY)
        if steps_run and limits:
            for key, _ in limits:
                if key not in in_use:
                    in_use[key] = conn.execute(
                        "SELECT count(*) FROM concurrency_slots WHERE ckey = ? AND expires_at > ?",
                        (key, now),
                    ).fetchone()[0]
            if any(in_use[key] >= cap for key, cap in limits):
                conn.execute(
                    "UPDATE jobs SET run_at = ? WHERE id = ?", (now + CONCURRENCY_RETRY_MS, job.id)
                )
                continue
        run_limits = load(run_concurrency) if run_concurrency else []
        starting = run_limits and job.kind is JobKind.CALL and status == RunStatus.SCHEDULED.value
        if starting and not _take_run_slots(conn, str(job.run_id), run_limits, run_in_use):
            conn.execute(
                "UPDATE jobs SET run_at = ? WHERE id = ?", (now + CONCURRENCY_RETRY_MS, job.id)
            )
            continue
        throttle = load(throttle_row) if throttle_row else None
        if (
            throttle
            and job.kind is JobKind.CALL
            and status == RunStatus.SCHEDULED.value
            and job.attempt == 0
        ):
            key, cap, period, burst = throttle
            turn = _throttle_turn(conn, key, now, cap, period, burst)
            if turn is not None:
                conn.execute("UPDATE jobs SET run_at = ? WHERE id = ?", (turn, job.id))
                continue
        token = secrets.token_hex(8)
        generation = job.generation + (1 if job.lease else 0)
        updates.append((token, now + lease_ms, generation, job.id))
        if steps_run:
            for key, _ in limits:
                in_use[key] += 1
                slots.append((job.id, key, now + lease_ms))
        # run_at stays the time it was due, not its lease expiry.
        jobs.append(dataclasses.replace(job, lease=token, generation=generation))
    conn.executemany("UPDATE jobs SET lease = ?, run_at = ?, generation = ? WHERE id = ?", updates)
    conn.executemany(
        "INSERT INTO concurrency_slots (job_id, ckey, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT(job_id, ckey) DO UPDATE SET expires_at = excluded.expires_at",
        slots,
    )
    return jobs


def _throttle_turn(
    conn: sqlite3.Connection, key: str, now: int, limit: int, period: int, burst: int
) -> int | None:
    """None if a run may start now (taking its place), else when it may try again."""
    interval = period / limit
    row = conn.execute("SELECT tat FROM rate_limits WHERE key = ?", (key,)).fetchone()
    tat = max(row[0], now) if row else now
    # Back-to-back starts allowed: 1 + burst; then one per interval.
    tolerance = burst * interval
    if tat - now > tolerance:
        return int(tat - tolerance)
    conn.execute(
        "INSERT INTO rate_limits (key, tat) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET tat = excluded.tat",
        (key, int(tat + interval)),
    )
    return None


def _take_run_slots(
    conn: sqlite3.Connection, run_id: str, limits: list[list[Any]], in_use: dict[str, int]
) -> bool:
    """A starting run takes one slot per run-level limit, or none if any limit is full."""
    needed = []
    for key, cap in limits:
        held = conn.execute(
            "SELECT 1 FROM run_slots WHERE run_id = ? AND ckey = ?", (run_id, key)
        ).fetchone()
        if held is not None:
            continue  # a retried start keeps the slot it took
        if key not in in_use:
            in_use[key] = conn.execute(
                "SELECT count(*) FROM run_slots WHERE ckey = ?", (key,)
            ).fetchone()[0]
        if in_use[key] >= cap:
            return False
        needed.append(key)
    for key in needed:
        conn.execute("INSERT INTO run_slots (run_id, ckey) VALUES (?, ?)", (run_id, key))
        in_use[key] += 1
    return True


def release_slots(conn: sqlite3.Connection, job_id: int) -> None:
    conn.execute("DELETE FROM concurrency_slots WHERE job_id = ?", (job_id,))


def insert_job(conn: sqlite3.Connection, job: NewJob) -> None:
    conn.execute(
        "INSERT INTO jobs (key, run_id, kind, step_id, attempt, run_at, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
        (
            job.key,
            job.run_id,
            job.kind.value,
            job.step_id,
            job.attempt,
            job.run_at,
            dump(job.payload) if job.payload is not None else None,
        ),
    )


def apply_ingest(conn: sqlite3.Connection, batch: Ingest) -> list[str]:
    repeated = _insert_event_copies(conn, batch.events)
    # A copy of an event stored before (a retried send) starts nothing and matches no
    # pause: its first copy already did, and doing it again would run or resume twice.
    queue_pause_matches(conn, [e for e in batch.events if e.internal_id not in repeated])
    created: list[str] = []
    for run in batch.runs:
        if run.event_ids and run.event_ids[0] in repeated:
            continue
        if run.debounce is not None:
            _debounce(conn, run)
        elif run.batch is not None:
            started = _append_to_batch(conn, run)
            if started is not None:
                created.append(started)
        elif create_run(conn, run):
            created.append(run.id)
    return created


def _insert_event_copies(conn: sqlite3.Connection, events: list[EventRecord]) -> set[str]:
    """Store every event as its next copy; the internal ids some earlier ingest stored."""
    if not events:
        return set()
    next_copy: dict[str, int] = {}
    for chunk in chunks(sorted({e.internal_id for e in events})):
        marks = ",".join("?" * len(chunk))
        next_copy.update(
            (internal_id, top + 1)
            for internal_id, top in conn.execute(
                f"SELECT internal_id, max(copy) FROM events WHERE internal_id IN ({marks})"
                " GROUP BY internal_id",
                chunk,
            )
        )
    repeated = set(next_copy)
    rows = []
    for e in events:
        copy = next_copy.get(e.internal_id, 0)
        next_copy[e.internal_id] = copy + 1
        rows.append(
            (
                e.internal_id,
                e.id,
                e.name,
                dump(e.data),
                dump(e.user),
                e.ts,
                e.v,
                e.received_at,
                copy,
            )
        )
    conn.executemany(
        f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
    )
    return repeated


def _flow_skip(conn: sqlite3.Connection, run: NewRun) -> str | None:
    """Why a new run may not start (rate limit, singleton), or None. Consumes a rate slot."""
    if run.singleton_key is not None:
        active = conn.execute(
            "SELECT id FROM runs WHERE function_id = ? AND singleton_key = ? AND status IN (?, ?)",
            (run.function_id, run.singleton_key, *ACTIVE),
        ).fetchall()
        if active and not run.singleton_cancels:
            return "singleton"
        for (other,) in active:
            # "cancel" mode: the newer run wins; a job cancels the older one right away.
            insert_job(
                conn,
                NewJob(
                    run_id=other,
                    kind=JobKind.RUN_TIMEOUT,
                    run_at=run.created_at,
                    key=f"singleton:{other}",
                    payload={"which": "singleton", "by": run.id},
                ),
            )
    if run.rate_limit is not None:
        limit = run.rate_limit
        row = conn.execute("SELECT tat FROM rate_limits WHERE key = ?", (limit.key,)).fetchone()
        tat = gcra.allow(row[0] if row else None, run.created_at, limit.limit, limit.period_ms)
        if tat is None:
            return "rate_limited"
        conn.execute(
            "INSERT INTO rate_limits (key, tat) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET tat = excluded.tat",
            (limit.key, tat),
        )
    return None


def create_run(conn: sqlite3.Connection, run: NewRun) -> bool:
    """Create a run with its first job, pauses and timeouts; False if its key was seen."""
    cur = conn.execute(
        "INSERT INTO idempotency (function_id, key, run_id, expires_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(function_id, key) DO UPDATE SET run_id = excluded.run_id,"
        " expires_at = excluded.expires_at WHERE idempotency.expires_at < ?",
        (
            run.function_id,
            run.idempotency_key,
            run.id,
            run.created_at + IDEMPOTENCY_TTL_MS,
            run.created_at,
        ),
    )
    if cur.rowcount == 0:
        return False  # the same function already ran for this key within 24 h
    skip = run.skip_reason or _flow_skip(conn, run)
    conn.execute(
        "INSERT INTO runs (id, function_id, function_slug, event_id, event_ids, status,"
        " created_at, ended_at, cron, correlation_id, skip_reason, singleton_key, concurrency,"
        " throttle, run_concurrency) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run.id,
            run.function_id,
            run.function_slug,
            run.event_ids[0],
            dump(list(run.event_ids)),
            (RunStatus.SKIPPED if skip else RunStatus.SCHEDULED).value,
            run.created_at,
            run.created_at if skip else None,
            run.cron,
            run.correlation_id,
            skip,
            run.singleton_key,
            dump([list(c) for c in run.concurrency]) if run.concurrency else None,
            dump([run.throttle.key, run.throttle.limit, run.throttle.period_ms, run.throttle.burst])
            if run.throttle
            else None,
            dump([list(c) for c in run.run_concurrency]) if run.run_concurrency else None,
        ),
    )
    if skip:
        return True  # visible through the API with its reason; it never runs
    start = run.start_at if run.start_at is not None else run.created_at
    insert_job(conn, NewJob(run_id=run.id, kind=JobKind.CALL, run_at=start))
    for job in run.jobs:
        insert_job(conn, job)
    for pause in run.pauses:
        insert_pause(conn, pause)
    return True


def _debounce(conn: sqlite3.Connection, run: NewRun) -> None:
    """Hold the key's latest event; its job fires when the key has been quiet long enough."""
    assert run.debounce is not None
    d, event_id, now = run.debounce, run.event_ids[0], run.created_at
    ts_row = conn.execute(
        "SELECT ts FROM events WHERE internal_id = ? AND copy = 0", (event_id,)
    ).fetchone()
    ts = ts_row[0] if ts_row else now
    row = conn.execute(
        "SELECT event_ts, first_at, job_key FROM debounces WHERE key = ?", (d.key,)
    ).fetchone()
    first_at = now if row is None else row[1]
    due = now + d.period_ms
    if d.timeout_ms is not None:
        due = min(due, first_at + d.timeout_ms)
    if row is None:
        job_key = f"debounce:{d.key}:{event_id}"
        conn.execute(
            "INSERT INTO debounces (key, function_id, event_id, event_ts, first_at, due_at, job_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (d.key, run.function_id, event_id, ts, now, due, job_key),
        )
        insert_job(
            conn,
            NewJob(
                run_id=None, kind=JobKind.DEBOUNCE, run_at=due, key=job_key, payload={"key": d.key}
            ),
        )
        return
    if ts < row[0]:
        return  # older than the event held: strict ordering, it is ignored
    job_key = row[2]
    moved = conn.execute(
        "UPDATE jobs SET run_at = ? WHERE key = ? AND lease IS NULL", (due, job_key)
    ).rowcount
    if moved == 0:
        # The job is firing right now (or gone): this event opens the next quiet period.
        job_key = f"debounce:{d.key}:{event_id}"
        insert_job(
            conn,
            NewJob(
                run_id=None, kind=JobKind.DEBOUNCE, run_at=due, key=job_key, payload={"key": d.key}
            ),
        )
    conn.execute(
        "UPDATE debounces SET event_id = ?, event_ts = ?, due_at = ?, job_key = ? WHERE key = ?",
        (event_id, ts, due, job_key, d.key),
    )


def _append_to_batch(conn: sqlite3.Connection, run: NewRun) -> str | None:
    """Add the event to its key's batch; start the batch's run when it is full."""
    assert run.batch is not None
    b, event_id, now = run.batch, run.event_ids[0], run.created_at
    row = conn.execute("SELECT batch_id, event_ids FROM batches WHERE key = ?", (b.key,)).fetchone()
    if row is None:
        batch_id, ids = run.id, [event_id]
        conn.execute(
            "INSERT INTO batches (key, batch_id, function_id, function_slug, event_ids, first_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (b.key, batch_id, run.function_id, run.function_slug, dump(ids), now),
        )
        insert_job(
            conn,
            NewJob(
                run_id=None,
                kind=JobKind.BATCH,
                run_at=now + b.timeout_ms,
                key=f"batch:{batch_id}",
                payload={"key": b.key, "batch_id": batch_id},
            ),
        )
    else:
        batch_id, ids = row[0], [*load(row[1]), event_id]
        conn.execute("UPDATE batches SET event_ids = ? WHERE key = ?", (dump(ids), b.key))
    if len(ids) < b.max_size:
        return None
    return flush_batch(conn, b.key, batch_id, now)


def flush_batch(conn: sqlite3.Connection, key: str, batch_id: str, now: int) -> str | None:
    """Start the run of a batch (full, or timed out); None if it already started."""
    row = conn.execute(
        "SELECT function_id, function_slug, event_ids FROM batches WHERE key = ? AND batch_id = ?",
        (key, batch_id),
    ).fetchone()
    if row is None:
        return None
    conn.execute("DELETE FROM batches WHERE key = ?", (key,))
    conn.execute("DELETE FROM jobs WHERE key = ? AND lease IS NULL", (f"batch:{batch_id}",))
    ids = tuple(load(row[2]))
    run = NewRun(
        id=batch_id,
        function_id=row[0],
        function_slug=row[1],
        event_ids=ids,
        idempotency_key=f"batch:{batch_id}",
        created_at=now,
    )
    return batch_id if create_run(conn, run) else None


def queue_pause_matches(conn: sqlite3.Connection, events: list[EventRecord]) -> None:
    """A match job for each event whose name some pause waits on.

    The job carries the event's horizon, the newest pause id at this moment: pauses
    written later never match this event, however the jobs interleave.
    """
    names = {e.name for e in events}
    waited = {
        name
        for name in names
        if conn.execute("SELECT 1 FROM pauses WHERE event_name = ? LIMIT 1", (name,)).fetchone()
    }
    if not waited:
        return
    horizon = conn.execute("SELECT coalesce(max(id), 0) FROM pauses").fetchone()[0]
    for e in events:
        if e.name in waited:
            insert_job(
                conn,
                NewJob(
                    run_id=None,
                    kind=JobKind.MATCH,
                    run_at=e.received_at,
                    key=f"match:{e.internal_id}",
                    payload={"event_id": e.internal_id, "horizon": horizon},
                ),
            )


def insert_pause(conn: sqlite3.Connection, p: NewPause) -> None:
    if p.signal is not None:
        holder = conn.execute(
            "SELECT run_id, step_id FROM pauses WHERE signal = ?", (p.signal,)
        ).fetchone()
        if holder is not None and tuple(holder) != (p.run_id, p.step_id):
            if not p.steal_signal:
                raise SignalTaken(f"signal {p.signal!r} is already awaited by run {holder[0]}")
            # The earlier waiter keeps its pause and its timeout, but no longer the signal.
            conn.execute("UPDATE pauses SET signal = NULL WHERE signal = ?", (p.signal,))
    conn.execute(
        "INSERT INTO pauses (key, run_id, step_id, kind, event_name, expression, index_path,"
        " index_value, signal, expires_at, created_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(key) DO NOTHING",
        (
            p.key,
            p.run_id,
            p.step_id,
            p.kind.value,
            p.event_name,
            p.expression,
            p.index_path,
            p.index_value,
            p.signal,
            p.expires_at,
            p.created_at,
            None if p.data is None else dump(p.data),
        ),
    )


def write_history(conn: sqlite3.Connection, run_id: str, history: Iterable[HistoryEntry]) -> None:
    conn.executemany(
        "INSERT INTO history (run_id, at, kind, step_id, name, attempt, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                run_id,
                h.at,
                h.kind.value,
                h.step_id,
                h.name,
                h.attempt,
                None if h.data is None else dump(h.data),
            )
            for h in history
        ],
    )


# ---- steps: settling results, planning new ones, and going on -------------------------
def record_result(conn: sqlite3.Connection, run_id: str, step: Settled) -> bool:
    """Store a step's result unless it has one (the first one wins); True if stored now."""
    seq = conn.execute(
        "SELECT coalesce(max(seq), -1) + 1 FROM steps WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    fresh = (
        conn.execute(
            "INSERT INTO steps (run_id, step_id, seq, memo) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(run_id, step_id) DO NOTHING",
            (run_id, step.step_id, seq, dump(step.memo)),
        ).rowcount
        == 1
    )
    if fresh:
        # A step's ending is told once, with the result that ended it.
        write_history(conn, run_id, step.history)
    return fresh


def settle(conn: sqlite3.Connection, run_id: str, step: Settled) -> fanin.SettledStep:
    """Store a step's result (the first one wins) and close the step if it was open."""
    fresh = record_result(conn, run_id, step)
    return _close(conn, run_id, step.step_id, fresh=fresh)


def abandon(conn: sqlite3.Connection, run_id: str, step_id: str) -> fanin.SettledStep:
    """Close an open step that settled without a result (the app no longer has it)."""
    return _close(conn, run_id, step_id, fresh=False)


def _close(
    conn: sqlite3.Connection, run_id: str, step_id: str, *, fresh: bool
) -> fanin.SettledStep:
    row = conn.execute(
        "DELETE FROM open_steps WHERE run_id = ? AND step_id = ? RETURNING batch, race",
        (run_id, step_id),
    ).fetchone()
    if row is None:
        return fanin.SettledStep(fresh=fresh, was_open=False)
    return fanin.SettledStep(fresh=fresh, was_open=True, batch=bool(row[0]), race=bool(row[1]))


def plan(conn: sqlite3.Connection, run_id: str, step: PlannedStep) -> bool:
    """Open a step with everything it waits on; False if it has a result or is open."""
    if conn.execute(
        "SELECT 1 FROM steps WHERE run_id = ?1 AND step_id = ?2"
        " UNION ALL SELECT 1 FROM open_steps WHERE run_id = ?1 AND step_id = ?2 LIMIT 1",
        (run_id, step.step_id),
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


def go_on(
    conn: sqlite3.Connection,
    run_id: str,
    settled: list[fanin.SettledStep],
    next_call: NewJob | None,
) -> None:
    """Add the run's next call if the fan-in rule says what settled lets it go on."""
    if next_call is None or not settled:
        return

    def batch_steps_left() -> int:
        return int(
            conn.execute(
                "SELECT count(*) FROM open_steps WHERE run_id = ? AND batch = 1 AND race = 0",
                (run_id,),
            ).fetchone()[0]
        )

    if not fanin.goes_on(settled, batch_steps_left):
        return
    insert_job(conn, next_call)
    row = conn.execute(
        "SELECT request_version, force_step_plan FROM runs WHERE id = ?", (run_id,)
    ).fetchone()
    if row is not None and row[1] and fanin.resets_step_planning(row[0]):
        conn.execute("UPDATE runs SET force_step_plan = 0 WHERE id = ?", (run_id,))


def end_run(conn: sqlite3.Connection, run_id: str, keep_job: int | None = None) -> None:
    """A run ended: none of its jobs or pauses may act any more, and its slots are free."""
    conn.execute("DELETE FROM run_slots WHERE run_id = ?", (run_id,))
    conn.execute(
        "DELETE FROM concurrency_slots WHERE job_id IN (SELECT id FROM jobs WHERE run_id = ?)",
        (run_id,),
    )
    conn.execute("DELETE FROM jobs WHERE run_id = ? AND id IS NOT ?", (run_id, keep_job))
    conn.execute("DELETE FROM pauses WHERE run_id = ?", (run_id,))
    conn.execute("DELETE FROM open_steps WHERE run_id = ?", (run_id,))


ACTIVE = (RunStatus.SCHEDULED.value, RunStatus.RUNNING.value)


def apply_run_change(conn: sqlite3.Connection, c: RunChange) -> bool:
    """Apply ``c`` if its guards hold; True if it was applied."""
    if c.require_active:
        row = conn.execute("SELECT status FROM runs WHERE id = ?", (c.run_id,)).fetchone()
        if row is None or row[0] not in ACTIVE:
            return False
    if c.consume_pause is not None:
        cur = conn.execute("DELETE FROM pauses WHERE key = ?", (c.consume_pause,))
        if cur.rowcount == 0:
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


def save_checkpoint(conn: sqlite3.Connection, cp: Checkpoint) -> CheckpointOutcome:
    """Write the steps of a checkpoint, unless its run ended or its dispatch is stale."""
    row = conn.execute("SELECT status FROM runs WHERE id = ?", (cp.run_id,)).fetchone()
    if row is None:
        return CheckpointOutcome.NO_RUN
    if row[0] not in ACTIVE:
        return CheckpointOutcome.RUN_ENDED
    if cp.fence is not None:
        job = conn.execute(
            "SELECT generation FROM jobs WHERE id = ? AND run_id = ?",
            (cp.fence.job_id, cp.run_id),
        ).fetchone()
        if dispatch.is_stale(cp.fence, job[0] if job is not None else None):
            return CheckpointOutcome.STALE
        # Steps that succeeded reset the budget: the next failure gets every retry again.
        conn.execute("UPDATE jobs SET attempt = 0 WHERE id = ?", (cp.fence.job_id,))
    if row[0] == RunStatus.SCHEDULED.value:
        conn.execute(
            "UPDATE runs SET status = ?, started_at = coalesce(started_at, ?) WHERE id = ?",
            (RunStatus.RUNNING.value, cp.started.at, cp.run_id),
        )
        write_history(conn, cp.run_id, [cp.started])
    for step in cp.settled:
        # Open steps stay open: only the call that was planned for one may close it.
        record_result(conn, cp.run_id, step)
    return CheckpointOutcome.SAVED


def _started_once(
    conn: sqlite3.Connection, run_id: str, history: list[HistoryEntry]
) -> list[HistoryEntry]:
    """A run's start is told once: a checkpoint may have started it during its first call."""
    if all(h.kind is not HistoryKind.RUN_STARTED for h in history):
        return history
    row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is not None and row[0] == RunStatus.SCHEDULED.value:
        return history
    return [h for h in history if h.kind is not HistoryKind.RUN_STARTED]


def apply_transition(conn: sqlite3.Connection, t: Transition) -> None:
    row = conn.execute("SELECT lease FROM jobs WHERE id = ?", (t.job_id,)).fetchone()
    if row is None or row[0] != t.lease:
        raise LeaseLost(f"job {t.job_id} is no longer leased by this worker")
    release_slots(conn, t.job_id)
    outcomes: list[fanin.SettledStep] = []
    opened = False
    if t.run_id is not None:
        write_history(conn, t.run_id, _started_once(conn, t.run_id, t.history))
        outcomes = [settle(conn, t.run_id, step) for step in t.settled]
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
    else:
        conn.execute("DELETE FROM jobs WHERE id = ?", (t.job_id,))
    if t.clear_run_jobs and t.run_id is not None:
        end_run(conn, t.run_id, keep_job=t.job_id)
    for job in t.new_jobs:
        insert_job(conn, job)
    if t.run_id is not None and not opened and not t.clear_run_jobs:
        # A step planned here calls the SDK again when it settles; going on now as well
        # would only call it early.
        go_on(conn, t.run_id, outcomes, t.continue_with)
    if t.run_id is not None and t.ending is not None:
        write_history(conn, t.run_id, [t.ending])
    if t.ingest is not None:
        apply_ingest(conn, t.ingest)
    for change in t.run_changes:
        apply_run_change(conn, change)
    if t.clear_debounce is not None:
        conn.execute("DELETE FROM debounces WHERE key = ? AND event_id = ?", t.clear_debounce)
    if t.flush_batch is not None:
        flush_batch(conn, *t.flush_batch)


def release_after_fault(conn: sqlite3.Connection, job_id: int, lease: str, run_at: int) -> bool:
    """The server failed handling a job: hand it back for another try at ``run_at``.

    Its concurrency slots are freed meanwhile; False if the lease was no longer ours.
    """
    cur = conn.execute(
        "UPDATE jobs SET lease = NULL, run_at = ?, faults = faults + 1, generation = generation + 1"
        " WHERE id = ? AND lease = ?",
        (run_at, job_id, lease),
    )
    if cur.rowcount == 0:
        return False
    release_slots(conn, job_id)
    return True


def update_run(conn: sqlite3.Connection, run_id: str, u: RunUpdate) -> None:
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
