"""Each app URL's last sync attempt, and which URLs were added through the API."""

from __future__ import annotations

from ..records import AppSyncRecord
from .conn import Conn, Row

_COLUMNS = "url, app_name, added_at, attempted_at, ok, error"


def _from_row(row: Row) -> AppSyncRecord:
    return AppSyncRecord(
        url=row["url"],
        attempted_at=row["attempted_at"],
        ok=bool(row["ok"]),
        error=row["error"],
        app_name=row["app_name"],
        added_at=row["added_at"],
    )


def record_app_sync(conn: Conn, sync: AppSyncRecord) -> None:
    # Two nodes may report attempts out of order: an older attempt never replaces a newer
    # one, but marking the URL added holds whatever the order.
    conn.execute(
        f"INSERT INTO app_syncs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (url) DO UPDATE SET"
        " added_at = COALESCE(app_syncs.added_at, excluded.added_at),"
        " app_name = CASE WHEN app_syncs.attempted_at <= excluded.attempted_at"
        "   THEN COALESCE(excluded.app_name, app_syncs.app_name) ELSE app_syncs.app_name END,"
        " ok = CASE WHEN app_syncs.attempted_at <= excluded.attempted_at"
        "   THEN excluded.ok ELSE app_syncs.ok END,"
        " error = CASE WHEN app_syncs.attempted_at <= excluded.attempted_at"
        "   THEN excluded.error ELSE app_syncs.error END,"
        " attempted_at = CASE WHEN app_syncs.attempted_at <= excluded.attempted_at"
        "   THEN excluded.attempted_at ELSE app_syncs.attempted_at END",
        (
            sync.url,
            sync.app_name,
            sync.added_at,
            sync.attempted_at,
            1 if sync.ok else 0,
            sync.error,
        ),
    )


def list_app_syncs(conn: Conn) -> list[AppSyncRecord]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM app_syncs ORDER BY url").fetchall()
    return [_from_row(r) for r in rows]
