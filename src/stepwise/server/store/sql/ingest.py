"""Storing events and creating the runs they start, with the flow control decided then.

Idempotency, singleton and rate limit decide whether a new run starts; debounce and
batching hold events back and start one run later. Each reads its state under the
lock of its key, asks its rule in ``server/flow/``, then writes.
"""

from __future__ import annotations

from ...flow import batching, debounce, gcra, idempotency, singleton
from ..records import EventRecord, Ingest, JobKind, NewJob, NewRun, RunStatus
from .conn import Conn, Cursor
from .jobs import insert_job, write_history
from .leasing import rate_lock, read_tat, write_tat
from .pauses import insert_pause
from .rows import ACTIVE, EVENT_COLUMNS, chunks, dump, dump_text, event_to_row, load, marks


def debounce_lock(key: str) -> str:
    return f"debounce:{key}"


def batch_lock(key: str) -> str:
    return f"batch:{key}"


def apply_ingest(conn: Conn, batch: Ingest) -> list[str]:
    # Sent before the copies are read: on a pipelined connection both come back together.
    waited = _waited_names(conn, {e.name for e in batch.events})
    repeated = _insert_event_copies(conn, batch.events)
    # A copy of an event stored before (a retried send) starts nothing and matches no
    # pause: its first copy already did, and doing it again would run or resume twice.
    queue_pause_matches(
        conn,
        [e for e in batch.events if e.internal_id not in repeated],
        {row["name"] for cur in waited for row in cur.fetchall()},
    )
    runs = [r for r in batch.runs if not (r.event_ids and r.event_ids[0] in repeated)]
    claims = _read_claims(conn, [r for r in runs if r.debounce is None and r.batch is None])
    created: list[str] = []
    for run in runs:
        if run.debounce is not None:
            _debounce(conn, run)
        elif run.batch is not None:
            started = _append_to_batch(conn, run)
            if started is not None:
                created.append(started)
        elif create_run(conn, run, claims):
            created.append(run.id)
    return created


def _insert_event_copies(conn: Conn, events: list[EventRecord]) -> set[str]:
    """Store every event as its next copy; the internal ids some earlier ingest stored."""
    if not events:
        return set()
    next_copy: dict[str, int] = {}
    for chunk in chunks(sorted({e.internal_id for e in events})):
        for row in conn.execute(
            f"SELECT internal_id, max(copy) AS top FROM events WHERE internal_id IN ({marks(len(chunk))})"
            " GROUP BY internal_id",
            chunk,
        ).fetchall():
            next_copy[row["internal_id"]] = row["top"] + 1
    repeated = set(next_copy)
    rows = []
    for e in events:
        copy = next_copy.get(e.internal_id, 0)
        next_copy[e.internal_id] = copy + 1
        rows.append(event_to_row(e, copy))
    conn.executemany(
        f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
    )
    return repeated


def _waited_names(conn: Conn, names: set[str]) -> list[Cursor]:
    """The queries for which of ``names`` some pause waits on (rows with ``name``)."""
    return [
        conn.execute(
            f"WITH n(name) AS (VALUES {', '.join(['(?)'] * len(chunk))})"
            " SELECT name FROM n WHERE EXISTS (SELECT 1 FROM pauses WHERE event_name = n.name)",
            chunk,
        )
        for chunk in chunks(sorted(names))
    ]


def queue_pause_matches(conn: Conn, events: list[EventRecord], waited: set[str]) -> None:
    """A match job for each event whose name some pause waits on (``waited``).

    The job carries the event's horizon, the newest pause id at this moment: pauses
    written later never match this event, however the jobs interleave.
    """
    if not waited or not events:
        return
    horizon = conn.execute("SELECT coalesce(max(id), 0) AS top FROM pauses").fetchone()["top"]
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


# ---- runs: idempotency, singleton, rate limit -------------------------------------------
# The current claims on idempotency keys, by (function id, key); a key absent is unclaimed.
Claims = dict[tuple[str, str], int]


def _read_claims(conn: Conn, runs: list[NewRun]) -> Claims:
    """Lock the idempotency keys of ``runs`` and read their claims, in one query per chunk
    rather than one per run."""
    keys = sorted({(run.function_id, run.idempotency_key) for run in runs})
    for function_id, key in keys:
        conn.lock(f"idempotency:{function_id}:{key}")
    claims: Claims = {}
    for start in range(0, len(keys), 250):
        chunk = keys[start : start + 250]
        for row in conn.execute(
            "SELECT function_id, key, expires_at FROM idempotency WHERE (function_id, key)"
            f" IN (VALUES {', '.join(['(?, ?)'] * len(chunk))})",
            [value for pair in chunk for value in pair],
        ).fetchall():
            claims[(row["function_id"], row["key"])] = row["expires_at"]
    return claims


def _claim_idempotency_key(conn: Conn, run: NewRun, claims: Claims | None) -> bool:
    """Claim the run's idempotency key for its function; False if it is claimed already.

    ``claims``: what ``_read_claims`` read for this ingest's runs (under their locks),
    kept current here; None reads this run's alone.
    """
    pair = (run.function_id, run.idempotency_key)
    if claims is None:
        claims = _read_claims(conn, [run])
    if not idempotency.claimable(claims.get(pair), run.created_at):
        return False
    claims[pair] = idempotency.expiry(run.created_at)
    conn.execute(
        "INSERT INTO idempotency (function_id, key, run_id, expires_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (function_id, key) DO UPDATE SET run_id = excluded.run_id,"
        " expires_at = excluded.expires_at",
        (
            run.function_id,
            run.idempotency_key,
            run.id,
            idempotency.expiry(run.created_at),
        ),
    )
    return True


def _singleton_skip(conn: Conn, run: NewRun) -> bool:
    """Whether an active run with the same singleton key keeps this one from starting."""
    assert run.singleton_key is not None
    conn.lock(f"singleton:{run.function_id}:{run.singleton_key}")
    active = [
        row["id"]
        for row in conn.execute(
            "SELECT id FROM runs WHERE function_id = ? AND singleton_key = ? AND status IN (?, ?)",
            (run.function_id, run.singleton_key, *ACTIVE),
        ).fetchall()
    ]
    verdict = singleton.decide(active, run.singleton_cancels)
    for other in verdict.cancel:
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
    return verdict.skip


def _rate_limited(conn: Conn, run: NewRun) -> bool:
    """Whether the run's rate limit refuses it; if not, it takes its place."""
    assert run.rate_limit is not None
    limit = run.rate_limit
    conn.lock(rate_lock(limit.key))
    tat = gcra.allow(read_tat(conn, limit.key), run.created_at, limit.limit, limit.period_ms)
    if tat is None:
        return True
    write_tat(conn, limit.key, tat)
    return False


def _flow_skip(conn: Conn, run: NewRun) -> str | None:
    """Why a new run may not start (singleton, rate limit), or None. Consumes a rate slot."""
    if run.singleton_key is not None and _singleton_skip(conn, run):
        return "singleton"
    if run.rate_limit is not None and _rate_limited(conn, run):
        return "rate_limited"
    return None


def create_run(conn: Conn, run: NewRun, claims: Claims | None = None) -> bool:
    """Create a run with its first job, pauses and timeouts; False if its key was seen."""
    if not _claim_idempotency_key(conn, run, claims):
        return False
    skip = run.skip_reason or _flow_skip(conn, run)
    conn.execute(
        "INSERT INTO runs (id, function_id, function_slug, event_id, event_ids, status,"
        " created_at, started_at, ended_at, cron, correlation_id, skip_reason, singleton_key,"
        " concurrency, throttle, run_concurrency, original_run_id, queue_rank)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run.id,
            run.function_id,
            run.function_slug,
            run.event_ids[0],
            dump(list(run.event_ids)),
            _first_status(run, skip).value,
            run.created_at,
            None if skip else run.started_at,
            run.created_at if skip else None,
            run.cron,
            run.correlation_id,
            skip,
            run.singleton_key,
            dump_text([list(c) for c in run.concurrency]) if run.concurrency else None,
            dump_text(
                [run.throttle.key, run.throttle.limit, run.throttle.period_ms, run.throttle.burst]
            )
            if run.throttle
            else None,
            dump_text([list(c) for c in run.run_concurrency]) if run.run_concurrency else None,
            run.original_run_id,
            run.start_at if run.start_at is not None else run.created_at,
        ),
    )
    if skip:
        return True  # visible through the API with its reason; it never runs
    if run.started_at is not None:
        return True  # its caller runs it (a durable endpoint): no call until it goes async
    start = run.start_at if run.start_at is not None else run.created_at
    insert_job(conn, NewJob(run_id=run.id, kind=JobKind.CALL, run_at=start))
    for job in run.jobs:
        insert_job(conn, job)
    for pause in run.pauses:
        insert_pause(conn, pause)
    _seed_steps(conn, run)
    return True


def _first_status(run: NewRun, skip: str | None) -> RunStatus:
    if skip:
        return RunStatus.SKIPPED
    return RunStatus.SCHEDULED if run.started_at is None else RunStatus.RUNNING


def _seed_steps(conn: Conn, run: NewRun) -> None:
    """A rerun's results from its original, numbered in order before any step of its own."""
    if not run.seed_steps:
        return
    conn.executemany(
        "INSERT INTO steps (run_id, step_id, seq, memo) VALUES (?, ?, ?, ?)",
        [(run.id, step.step_id, seq, dump(step.memo)) for seq, step in enumerate(run.seed_steps)],
    )
    write_history(conn, run.id, [entry for step in run.seed_steps for entry in step.history])


# ---- debounce -------------------------------------------------------------------------
def _debounce_job(key: str, event_id: str, due: int) -> NewJob:
    return NewJob(
        run_id=None,
        kind=JobKind.DEBOUNCE,
        run_at=due,
        key=f"debounce:{key}:{event_id}",
        payload={"key": key},
    )


def _debounce(conn: Conn, run: NewRun) -> None:
    """Hold the key's latest event; its job fires when the key has been quiet long enough."""
    assert run.debounce is not None
    d, event_id, now = run.debounce, run.event_ids[0], run.created_at
    conn.lock(debounce_lock(d.key))
    ts_row = conn.execute(
        "SELECT ts FROM events WHERE internal_id = ? AND copy = 0", (event_id,)
    ).fetchone()
    ts = ts_row["ts"] if ts_row else now
    row = conn.execute(
        "SELECT event_ts, first_at, job_key FROM debounces WHERE key = ?", (d.key,)
    ).fetchone()
    held = None if row is None else debounce.Held(row["event_ts"], row["first_at"])
    if not debounce.accepts(held, ts):
        return
    due = debounce.due_at(held, now, d.period_ms, d.timeout_ms)
    if row is None:
        job = _debounce_job(d.key, event_id, due)
        conn.execute(
            "INSERT INTO debounces (key, function_id, event_id, event_ts, first_at, due_at, job_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (d.key, run.function_id, event_id, ts, now, due, job.key),
        )
        insert_job(conn, job)
        return
    job_key = row["job_key"]
    moved = conn.execute(
        "UPDATE jobs SET run_at = ? WHERE key = ? AND lease IS NULL", (due, job_key)
    ).rowcount
    if moved == 0:
        # The job is firing right now (or gone): this event opens the next quiet period.
        job = _debounce_job(d.key, event_id, due)
        job_key = job.key
        insert_job(conn, job)
    conn.execute(
        "UPDATE debounces SET event_id = ?, event_ts = ?, due_at = ?, job_key = ? WHERE key = ?",
        (event_id, ts, due, job_key, d.key),
    )


def clear_debounce(conn: Conn, key: str, event_id: str) -> None:
    """A debounce fired with ``event_id``: the key is free again, unless a newer event came."""
    conn.lock(debounce_lock(key))
    row = conn.execute("SELECT event_id FROM debounces WHERE key = ?", (key,)).fetchone()
    if row is not None and debounce.fired_holds(row["event_id"], event_id):
        conn.execute("DELETE FROM debounces WHERE key = ?", (key,))


# ---- batching -------------------------------------------------------------------------
def _append_to_batch(conn: Conn, run: NewRun) -> str | None:
    """Add the event to its key's batch; start the batch's run when it is full."""
    assert run.batch is not None
    b, event_id, now = run.batch, run.event_ids[0], run.created_at
    conn.lock(batch_lock(b.key))
    row = conn.execute("SELECT batch_id, event_ids FROM batches WHERE key = ?", (b.key,)).fetchone()
    ids = batching.append(None if row is None else load(row["event_ids"]), event_id)
    if row is None:
        batch_id = run.id
        conn.execute(
            "INSERT INTO batches (key, batch_id, function_id, function_slug, event_ids, first_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (b.key, batch_id, run.function_id, run.function_slug, dump_text(ids), now),
        )
        insert_job(
            conn,
            NewJob(
                run_id=None,
                kind=JobKind.BATCH,
                run_at=batching.timeout_at(now, b.timeout_ms),
                key=f"batch:{batch_id}",
                payload={"key": b.key, "batch_id": batch_id},
            ),
        )
    else:
        batch_id = row["batch_id"]
        conn.execute("UPDATE batches SET event_ids = ? WHERE key = ?", (dump_text(ids), b.key))
    if not batching.is_full(ids, b.max_size):
        return None
    return flush_batch(conn, b.key, batch_id, now)


def flush_batch(conn: Conn, key: str, batch_id: str, now: int) -> str | None:
    """Start the run of a batch (full, or timed out); None if it already started."""
    conn.lock(batch_lock(key))
    row = conn.execute(
        "SELECT batch_id, function_id, function_slug, event_ids FROM batches WHERE key = ?",
        (key,),
    ).fetchone()
    if row is None or not batching.flushes(row["batch_id"], batch_id):
        return None
    conn.execute("DELETE FROM batches WHERE key = ?", (key,))
    conn.execute("DELETE FROM jobs WHERE key = ? AND lease IS NULL", (f"batch:{batch_id}",))
    run = NewRun(
        id=batch_id,
        function_id=row["function_id"],
        function_slug=row["function_slug"],
        event_ids=tuple(load(row["event_ids"])),
        idempotency_key=f"batch:{batch_id}",
        created_at=now,
    )
    return batch_id if create_run(conn, run) else None
