"""Durable endpoints' runs: started with their first checkpoint, stepped by later ones,
and the stream their handler tees to the server, kept in order.

A durable endpoint's handler runs inside its client's HTTP request, so its checkpoints
answer a call that no job stands for: they are applied as a transition of ``NO_JOB``,
under the run's lock, only while the run is active.
"""

from __future__ import annotations

from dataclasses import replace

from ..records import (
    NO_JOB,
    CheckpointOutcome,
    EndpointOutcome,
    EndpointRecord,
    EndpointStart,
    HistoryEntry,
    HistoryKind,
    Ingest,
    StreamOutcome,
    Transition,
)
from .apps import upsert_app
from .conn import Conn, Row
from .housekeeping import bump_registry_version
from .ingest import apply_ingest
from .jobs import write_history
from .rows import ACTIVE, dump, load
from .steps import lock_run
from .transitions import apply_without_job

ENDPOINT_COLUMNS = (
    "run_id, method, url, content_type, retries, token, stream_token, created_at,"
    " stream_seq, stream_bytes"
)


def _endpoint_from_row(row: Row) -> EndpointRecord:
    return EndpointRecord(
        run_id=row["run_id"],
        method=row["method"],
        url=row["url"],
        content_type=row["content_type"],
        retries=int(row["retries"]),
        token=row["token"],
        stream_token=row["stream_token"],
        created_at=int(row["created_at"]),
        stream_seq=int(row["stream_seq"]),
        stream_bytes=int(row["stream_bytes"]),
    )


def get_endpoint(conn: Conn, run_id: str) -> EndpointRecord | None:
    row = conn.execute(
        f"SELECT {ENDPOINT_COLUMNS} FROM endpoint_runs WHERE run_id = ?", (run_id,)
    ).fetchone()
    return None if row is None else _endpoint_from_row(row)


def _same_start(conn: Conn, start: EndpointStart) -> EndpointRecord | None:
    """The endpoint stored for the run, if it was started by this same request."""
    stored = get_endpoint(conn, start.run.id)
    if stored is None:
        return None
    row = conn.execute(
        "SELECT e.data FROM runs r JOIN events e ON e.internal_id = r.event_id AND e.copy = 0"
        " WHERE r.id = ?",
        (start.run.id,),
    ).fetchone()
    if row is None or load(row["data"]) != start.event.data:
        return None
    return stored


def start_endpoint_run(
    conn: Conn, start: EndpointStart
) -> tuple[EndpointOutcome, EndpointRecord | None]:
    """Create the app and function as needed, the run with its event and endpoint row, and
    apply the first checkpoint's transition; nothing at all unless the run id is new."""
    run_id = start.run.id
    lock_run(conn, run_id)
    if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None:
        same = _same_start(conn, start)
        if same is not None:
            return EndpointOutcome.REPEATED, same
        return EndpointOutcome.RUN_EXISTS, None
    conn.lock(f"app:{start.app.name}")
    app_row = conn.execute("SELECT id FROM apps WHERE name = ?", (start.app.name,)).fetchone()
    fn = start.function
    fn_row = conn.execute(
        "SELECT id, app_id, config, url FROM functions WHERE slug = ?", (fn.slug,)
    ).fetchone()
    if fn_row is not None and (app_row is None or fn_row["app_id"] != app_row["id"]):
        return EndpointOutcome.FUNCTION_TAKEN, None
    changed = False
    if app_row is None:
        upsert_app(conn, start.app)
        app_id, changed = start.app.id, True
    else:
        app_id = app_row["id"]
    if fn_row is None:
        conn.execute(
            "INSERT INTO functions (id, app_id, slug, name, config, url, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (fn.id, app_id, fn.slug, fn.name, dump(fn.config), fn.url, fn.created_at),
        )
        function_id, changed = fn.id, True
    else:
        function_id = fn_row["id"]
        if load(fn_row["config"]) != fn.config or fn_row["url"] != fn.url:
            conn.execute(
                "UPDATE functions SET config = ?, url = ? WHERE id = ?",
                (dump(fn.config), fn.url, function_id),
            )
            changed = True
    if changed:
        bump_registry_version(conn)
    run = start.run
    if run.function_id != function_id:
        # The function was stored before, under its own id: the run names that one.
        run = replace(run, function_id=function_id)
    created = apply_ingest(conn, Ingest(events=[start.event], runs=[run]))
    if created != [run_id]:
        raise RuntimeError(f"durable endpoint run {run_id} was not created")
    e = start.endpoint
    conn.execute(
        f"INSERT INTO endpoint_runs ({ENDPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            e.method,
            e.url,
            e.content_type,
            e.retries,
            e.token,
            e.stream_token,
            e.created_at,
            0,
            0,
        ),
    )
    write_history(conn, run_id, [HistoryEntry(HistoryKind.RUN_STARTED, e.created_at)])
    apply_without_job(conn, start.first)
    return EndpointOutcome.CREATED, e


def save_endpoint_steps(conn: Conn, t: Transition) -> CheckpointOutcome:
    """Apply a later checkpoint of a durable endpoint's handler, while its run is active."""
    assert t.run_id is not None and t.job_id == NO_JOB
    lock_run(conn, t.run_id)
    row = conn.execute(
        "SELECT r.status, e.run_id AS endpoint FROM runs r"
        " LEFT JOIN endpoint_runs e ON e.run_id = r.id WHERE r.id = ?",
        (t.run_id,),
    ).fetchone()
    if row is None:
        return CheckpointOutcome.NO_RUN
    if row["endpoint"] is None:
        return CheckpointOutcome.NOT_ENDPOINT
    if row["status"] not in ACTIVE:
        return CheckpointOutcome.RUN_ENDED
    apply_without_job(conn, t)
    return CheckpointOutcome.SAVED


def append_stream(conn: Conn, run_id: str, chunks: list[bytes], max_bytes: int) -> StreamOutcome:
    """Add chunks to the end of a run's stream, unless it would hold over ``max_bytes``."""
    conn.lock(f"stream:{run_id}")
    row = conn.execute(
        "SELECT stream_seq, stream_bytes FROM endpoint_runs WHERE run_id = ?", (run_id,)
    ).fetchone()
    if row is None:
        return StreamOutcome.NOT_ENDPOINT
    size = sum(len(chunk) for chunk in chunks)
    if int(row["stream_bytes"]) + size > max_bytes:
        return StreamOutcome.FULL
    first = int(row["stream_seq"])
    conn.executemany(
        "INSERT INTO endpoint_streams (run_id, seq, chunk) VALUES (?, ?, ?)",
        [(run_id, first + i, chunk) for i, chunk in enumerate(chunks)],
    )
    conn.execute(
        "UPDATE endpoint_runs SET stream_seq = ?, stream_bytes = ? WHERE run_id = ?",
        (first + len(chunks), int(row["stream_bytes"]) + size, run_id),
    )
    return StreamOutcome.APPENDED


def read_stream(conn: Conn, run_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
    """Up to ``limit`` chunks of a run's stream numbered above ``after``, in order."""
    rows = conn.execute(
        "SELECT seq, chunk FROM endpoint_streams WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (run_id, after, limit),
    ).fetchall()
    return [(int(row["seq"]), bytes(row["chunk"])) for row in rows]
