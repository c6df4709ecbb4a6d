"""Bulk cancellations (POST /v1/cancellations): the record and the job that works it."""

from __future__ import annotations

from ..records import CancellationRecord, NewJob
from .conn import Conn
from .jobs import insert_job
from .rows import CANCELLATION_COLUMNS, cancellation_from_row


def create_cancellation(conn: Conn, record: CancellationRecord, job: NewJob) -> None:
    conn.execute(
        f"INSERT INTO cancellations ({CANCELLATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            record.id,
            record.app_id,
            record.function_slug,
            record.started_before,
            record.created_at,
            record.started_after,
            record.expression,
        ),
    )
    insert_job(conn, job)


def list_cancellations(conn: Conn) -> list[CancellationRecord]:
    rows = conn.execute(
        f"SELECT {CANCELLATION_COLUMNS} FROM cancellations ORDER BY created_at DESC, id DESC"
    ).fetchall()
    return [cancellation_from_row(r) for r in rows]


def get_cancellation(conn: Conn, cancellation_id: str) -> CancellationRecord | None:
    row = conn.execute(
        f"SELECT {CANCELLATION_COLUMNS} FROM cancellations WHERE id = ?", (cancellation_id,)
    ).fetchone()
    return cancellation_from_row(row) if row else None


def delete_cancellation(conn: Conn, cancellation_id: str) -> bool:
    deleted = conn.execute("DELETE FROM cancellations WHERE id = ?", (cancellation_id,)).rowcount
    conn.execute("DELETE FROM jobs WHERE key = ?", (f"cancel_bulk:{cancellation_id}",))
    return deleted > 0
