"""Queue rows: adding a job (de-duplicated by key) and history entries."""

from __future__ import annotations

from collections.abc import Iterable

from ..records import HistoryEntry, NewJob
from .conn import Conn
from .rows import dump


def insert_job(conn: Conn, job: NewJob) -> None:
    conn.execute(
        "INSERT INTO jobs (key, run_id, kind, step_id, attempt, run_at, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
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


def write_history(conn: Conn, run_id: str, history: Iterable[HistoryEntry]) -> None:
    rows = [
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
    ]
    if rows:
        conn.executemany(
            "INSERT INTO history (run_id, at, kind, step_id, name, attempt, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
