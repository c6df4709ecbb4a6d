"""What the store holds about an event that started no run: the run holding the idempotency
key it would have used, and the open batch it may wait in (the dashboard's events page says
why an event started nothing; the deciding is in ``dashboard/event_fates.py``)."""

from __future__ import annotations

from .conn import Conn
from .rows import load


def idempotency_claim(conn: Conn, function_id: str, key: str) -> str | None:
    """The run whose start claimed ``key`` for the function, while the claim is stored."""
    row = conn.execute(
        "SELECT run_id FROM idempotency WHERE function_id = ? AND key = ?", (function_id, key)
    ).fetchone()
    return str(row["run_id"]) if row else None


def batch_holding(conn: Conn, key: str) -> list[str]:
    """The internal ids of the events the open batch of ``key`` holds (none: no open batch)."""
    row = conn.execute("SELECT event_ids FROM batches WHERE key = ?", (key,)).fetchone()
    return [str(e) for e in load(row["event_ids"])] if row else []
