"""SQLite connections: WAL, the chosen ``synchronous``, rows read by column name."""

from __future__ import annotations

import sqlite3


class SqliteConn(sqlite3.Connection):
    """A connection that satisfies ``sql.conn.Conn``.

    ``lock`` does nothing: one writer thread runs every write transaction in turn, so no
    two decisions on one key can interleave.
    """

    def lock(self, key: str) -> None:
        pass


def connect(path: str, synchronous: str) -> SqliteConn:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30, factory=SqliteConn
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn
