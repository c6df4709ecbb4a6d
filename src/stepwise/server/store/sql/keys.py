"""API keys for the REST API: stored by hash, looked up by hash, revoked in place."""

from __future__ import annotations

from ..records import ApiKeyRecord
from .conn import Conn, Row

API_KEY_COLUMNS = "id, name, key_hash, created_at, last_used_at, revoked_at"


def _key_from_row(row: Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        name=row["name"],
        key_hash=row["key_hash"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def create_api_key(conn: Conn, key: ApiKeyRecord) -> None:
    conn.execute(
        f"INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (key.id, key.name, key.key_hash, key.created_at, key.last_used_at, key.revoked_at),
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
