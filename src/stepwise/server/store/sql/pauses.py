"""Pauses: runs waiting for an event, a signal, an invoked child, or a cancellation."""

from __future__ import annotations

from collections.abc import Callable

from ..records import NewPause, Pause, SignalTaken
from .conn import Conn
from .rows import PAUSE_COLUMNS, dump, pause_from_row


def insert_pause(conn: Conn, p: NewPause) -> None:
    if p.signal is not None:
        holder = conn.execute(
            "SELECT run_id, step_id FROM pauses WHERE signal = ?", (p.signal,)
        ).fetchone()
        if holder is not None and (holder["run_id"], holder["step_id"]) != (p.run_id, p.step_id):
            if not p.steal_signal:
                raise SignalTaken(
                    f"signal {p.signal!r} is already awaited by run {holder['run_id']}"
                )
            # The earlier waiter keeps its pause and its timeout, but no longer the signal.
            conn.execute("UPDATE pauses SET signal = NULL WHERE signal = ?", (p.signal,))
    conn.execute(
        "INSERT INTO pauses (key, run_id, step_id, kind, event_name, expression, index_path,"
        " index_value, signal, expires_at, created_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (key) DO NOTHING",
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


def consume_pause(conn: Conn, key: str) -> bool:
    """Delete a pause; False if it was gone (another consumer won)."""
    return conn.execute("DELETE FROM pauses WHERE key = ?", (key,)).rowcount > 0


def find_pauses(
    conn: Conn, event_name: str, horizon: int, index_value_at: Callable[[str], str | None]
) -> list[Pause]:
    """Pauses on ``event_name`` written up to ``horizon`` that this event could match.

    Indexed pauses are looked up by (path, value): ``index_value_at(path)`` gives the
    event's canonical value at each indexed path. Unindexed pauses are all candidates.
    """
    # The distinct index paths of this event name, one index seek each: a plain
    # DISTINCT would walk every pause of the name.
    paths = [
        row["path"]
        for row in conn.execute(
            "WITH RECURSIVE p(path) AS ("
            " SELECT min(index_path) FROM pauses WHERE event_name = ? AND index_path IS NOT NULL"
            " UNION ALL"
            " SELECT (SELECT min(index_path) FROM pauses WHERE event_name = ? AND index_path > p.path)"
            " FROM p WHERE p.path IS NOT NULL"
            ") SELECT path FROM p WHERE path IS NOT NULL",
            (event_name, event_name),
        ).fetchall()
    ]
    rows = conn.execute(
        f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE event_name = ? AND index_path IS NULL AND id <= ?",
        (event_name, horizon),
    ).fetchall()
    for path in paths:
        value = index_value_at(path)
        if value is None:
            continue
        rows.extend(
            conn.execute(
                f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE event_name = ? AND index_path = ?"
                " AND index_value = ? AND id <= ?",
                (event_name, path, value, horizon),
            ).fetchall()
        )
    return sorted((pause_from_row(r) for r in rows), key=lambda p: p.id)


def get_pause(conn: Conn, key: str) -> Pause | None:
    row = conn.execute(f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE key = ?", (key,)).fetchone()
    return pause_from_row(row) if row else None


def pause_for_signal(conn: Conn, signal: str) -> Pause | None:
    row = conn.execute(f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE signal = ?", (signal,)).fetchone()
    return pause_from_row(row) if row else None


def run_pauses(conn: Conn, run_id: str) -> list[Pause]:
    rows = conn.execute(
        f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE run_id = ? ORDER BY id", (run_id,)
    ).fetchall()
    return [pause_from_row(r) for r in rows]
