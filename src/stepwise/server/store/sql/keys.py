"""API keys for the REST API: stored by hash, looked up by hash, revoked in place."""

from __future__ import annotations

from dataclasses import fields

from ..records import ApiKeyRecord
from .conn import Conn, Row

# The columns are the record's fields, by the same names and in the same order.
_FIELDS = [f.name for f in fields(ApiKeyRecord)]
API_KEY_COLUMNS = ", ".join(_FIELDS)


def _key_from_row(row: Row) -> ApiKeyRecord:
    return ApiKeyRecord(**{name: row[name] for name in _FIELDS})


def create_api_key(conn: Conn, key: ApiKeyRecord) -> None:
    conn.execute(
        f"INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES ({', '.join('?' for _ in _FIELDS)})",
        [getattr(key, name) for name in _FIELDS],
    )


def list_api_keys(conn: Conn) -> list[ApiKeyRecord]:
    rows = conn.execute(
        f"SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
    ).fetchall()
    return [_key_from_row(r) for r in rows]


def find_api_key(conn: Conn, key_hash: str) -> ApiKeyRecord | None:
    row = conn.execute(
        f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
        (key_hash,),
    ).fetchone()
    return _key_from_row(row) if row else None


def revoke_api_key(conn: Conn, key_id: str, now: int) -> bool:
    revoked = conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, key_id)
    ).rowcount
    return revoked > 0


def touch_api_key(conn: Conn, key_id: str, now: int) -> None:
    # Never backwards: two nodes may report uses out of order.
    conn.execute(
        "UPDATE api_keys SET last_used_at = ?"
        " WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
        (now, key_id, now),
    )
