"""Each app URL's last sync attempt, and which URLs were added through the API."""

from __future__ import annotations

from dataclasses import fields

from ..records import AppSyncRecord
from .conn import Conn, Row

# The columns are the record's fields, by the same names and in the same order.
_FIELDS = [f.name for f in fields(AppSyncRecord)]
_COLUMNS = ", ".join(_FIELDS)


def _from_row(row: Row) -> AppSyncRecord:
    values = {name: row[name] for name in _FIELDS}
    values["ok"] = bool(values["ok"])  # an INTEGER on both backends
    return AppSyncRecord(**values)


def record_app_sync(conn: Conn, sync: AppSyncRecord) -> None:
    # Two nodes may report attempts out of order: an older attempt never replaces a newer
    # one, but marking the URL added holds whatever the order.
    conn.execute(
        f"INSERT INTO app_syncs ({_COLUMNS}) VALUES ({', '.join('?' for _ in _FIELDS)})"
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
        [int(sync.ok) if name == "ok" else getattr(sync, name) for name in _FIELDS],
    )


def list_app_syncs(conn: Conn) -> list[AppSyncRecord]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM app_syncs ORDER BY url").fetchall()
    return [_from_row(r) for r in rows]
