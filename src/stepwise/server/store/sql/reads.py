"""Reads: events, runs and the state a call needs, steps, history, debounces."""

from __future__ import annotations

from typing import Any

from ..records import EventRecord, HistoryEntry, RunRecord, RunState, StepMemo
from .conn import Conn
from .defers import load_defers
from .rows import (
    ACTIVE,
    EVENT_COLUMNS,
    HISTORY_COLUMNS,
    RUN_COLUMNS,
    chunks,
    event_from_row,
    history_from_row,
    load,
    marks,
    run_from_row,
)


def get_event(conn: Conn, internal_id: str) -> EventRecord | None:
    row = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE internal_id = ? AND copy = 0", (internal_id,)
    ).fetchone()
    return event_from_row(row) if row else None


def list_events(
    conn: Conn,
    *,
    limit: int,
    cursor: tuple[str, int] | None,
    name: str | None,
    received_after: int | None,
    received_before: int | None,
) -> list[EventRecord]:
    where: list[str] = []
    params: list[Any] = []
    if cursor:
        where.append("(internal_id, copy) < (?, ?)")
        params.extend(cursor)
    if name:
        where.append("name = ?")
        params.append(name)
    if received_after is not None:
        where.append("received_at >= ?")
        params.append(received_after)
    if received_before is not None:
        where.append("received_at <= ?")
        params.append(received_before)
    sql = f"SELECT {EVENT_COLUMNS} FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY internal_id DESC, copy DESC LIMIT ?"
    params.append(limit)
    return [event_from_row(r) for r in conn.execute(sql, params).fetchall()]


def get_run(conn: Conn, run_id: str) -> RunRecord | None:
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    return run_from_row(row) if row else None


def runs_for_event(conn: Conn, internal_id: str) -> list[RunRecord]:
    rows = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE event_id = ? ORDER BY id", (internal_id,)
    ).fetchall()
    return [run_from_row(r) for r in rows]


def load_run_states(conn: Conn, run_ids: list[str]) -> dict[str, RunState]:
    """Several runs' state in four queries, however many runs."""
    runs: dict[str, RunRecord] = {}
    for chunk in chunks(sorted(set(run_ids))):
        for row in conn.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE id IN ({marks(len(chunk))})", chunk
        ).fetchall():
            runs[row["id"]] = run_from_row(row)
    event_ids = sorted({e for run in runs.values() for e in run.event_ids})
    events: dict[str, EventRecord] = {}
    for chunk in chunks(event_ids):
        for row in conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE copy = 0 AND internal_id IN ({marks(len(chunk))})",
            chunk,
        ).fetchall():
            events[row["internal_id"]] = event_from_row(row)
    steps: dict[str, list[StepMemo]] = {run_id: [] for run_id in runs}
    sizes: dict[str, int] = dict.fromkeys(runs, 0)
    for chunk in chunks(list(runs)):
        for row in conn.execute(
            "SELECT run_id, step_id, seq, memo FROM steps"
            f" WHERE run_id IN ({marks(len(chunk))}) ORDER BY run_id, seq",
            chunk,
        ).fetchall():
            memo = row["memo"]
            steps[row["run_id"]].append(StepMemo(row["step_id"], row["seq"], load(memo)))
            sizes[row["run_id"]] += len(memo)
    defers = load_defers(conn, list(runs))
    return {
        run_id: RunState(
            run=run,
            events=[events[e] for e in run.event_ids if e in events],
            steps=steps[run_id],
            state_bytes=sizes[run_id],
            defers=defers[run_id],
        )
        for run_id, run in runs.items()
    }


def load_run_state(conn: Conn, run_id: str) -> RunState | None:
    return load_run_states(conn, [run_id]).get(run_id)


def list_steps(conn: Conn, run_id: str) -> list[tuple[str, Any]]:
    rows = conn.execute(
        "SELECT step_id, memo FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
    ).fetchall()
    return [(r["step_id"], load(r["memo"])) for r in rows]


def run_history(conn: Conn, run_id: str) -> list[HistoryEntry]:
    rows = conn.execute(
        f"SELECT {HISTORY_COLUMNS} FROM history WHERE run_id = ? ORDER BY id", (run_id,)
    ).fetchall()
    return [history_from_row(r) for r in rows]


def active_runs(
    conn: Conn,
    function_slug: str,
    *,
    after_run_id: str,
    created_before: int,
    created_after: int | None,
    limit: int,
) -> list[RunState]:
    """Active runs of a function in a creation window, by run id, after a cursor."""
    ids = [
        r["id"]
        for r in conn.execute(
            "SELECT id FROM runs WHERE function_slug = ? AND id > ? AND status IN (?, ?)"
            " AND created_at <= ? AND created_at >= ? ORDER BY id LIMIT ?",
            (function_slug, after_run_id, *ACTIVE, created_before, created_after or 0, limit),
        ).fetchall()
    ]
    states = load_run_states(conn, ids)
    return [states[i] for i in ids if i in states]


def get_debounce(conn: Conn, key: str) -> tuple[str, str] | None:
    """The (function id, event id) a debounce holds for ``key``."""
    row = conn.execute(
        "SELECT function_id, event_id FROM debounces WHERE key = ?", (key,)
    ).fetchone()
    return (row["function_id"], row["event_id"]) if row else None


def count_jobs(conn: Conn) -> int:
    """Jobs other than cron ticks (tests and benchmarks wait for it to reach zero)."""
    row = conn.execute("SELECT count(*) AS n FROM jobs WHERE kind <> 'cron'").fetchone()
    return int(row["n"])
