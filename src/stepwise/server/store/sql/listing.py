"""Run listing: filtered, newest first, paged by keyset on (created_at, id).

A keyset page starts strictly after the last row of the previous one, so runs created
while a client pages (all newer than the first page) never shift or repeat what follows.
"""

from __future__ import annotations

from typing import Any

from ..records import RunFilter, RunHold, RunRecord
from .conn import Conn
from .rows import RUN_COLUMNS, marks, run_from_row

# A Running run holds a sleep while its wake-up is queued and no call to its app is; it
# holds a wait while it has a wait, invoke or signal pause and none of those jobs. The same
# reading as the dashboard's status of a listed run (``listed_status``), in SQL.
_BUSY = "EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = runs.id AND j.kind IN ('call', 'gateway'))"
_HOLDS = {
    RunHold.SLEEPING: (
        "(status = 'Running' AND NOT " + _BUSY + " AND EXISTS (SELECT 1 FROM jobs j"
        " WHERE j.run_id = runs.id AND j.kind = 'wake'))"
    ),
    RunHold.WAITING: (
        "(status = 'Running' AND NOT " + _BUSY + " AND NOT EXISTS (SELECT 1 FROM jobs j"
        " WHERE j.run_id = runs.id AND j.kind = 'wake') AND EXISTS (SELECT 1 FROM pauses p"
        " WHERE p.run_id = runs.id AND p.kind IN ('wait', 'invoke', 'signal')))"
    ),
}


def list_runs(
    conn: Conn, where: RunFilter, *, limit: int, after: tuple[int, str] | None
) -> list[RunRecord]:
    clauses: list[str] = []
    params: list[Any] = []
    if after is not None:
        clauses.append("(created_at, id) < (?, ?)")
        params.extend(after)
    if where.statuses or where.holds:
        either = [f"status IN ({marks(len(where.statuses))})"] if where.statuses else []
        params.extend(s.value for s in where.statuses)
        either += [_HOLDS[hold] for hold in dict.fromkeys(where.holds)]
        clauses.append("(" + " OR ".join(either) + ")")
    if where.function_slugs:
        clauses.append(f"function_slug IN ({marks(len(where.function_slugs))})")
        params.extend(where.function_slugs)
    if where.app_name is not None:
        clauses.append(
            "function_id IN (SELECT f.id FROM functions f JOIN apps a ON a.id = f.app_id"
            " WHERE a.name = ?)"
        )
        params.append(where.app_name)
    if where.created_from is not None:
        clauses.append("created_at >= ?")
        params.append(where.created_from)
    if where.created_until is not None:
        clauses.append("created_at < ?")
        params.append(where.created_until)
    if where.event_id is not None:
        clauses.append("event_id = ?")
        params.append(where.event_id)
    if where.event_name is not None:
        # Correlated, so that a newest-first scan stops at ``limit`` rows instead of first
        # collecting every event of that name.
        clauses.append(
            "EXISTS (SELECT 1 FROM events e WHERE e.internal_id = runs.event_id"
            " AND e.copy = 0 AND e.name = ?)"
        )
        params.append(where.event_name)
    sql = f"SELECT {RUN_COLUMNS} FROM runs"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
    params.append(limit)
    return [run_from_row(r) for r in conn.execute(sql, params).fetchall()]
