"""The connection every ``sql/`` function takes, whatever the database behind it.

SQL written against it uses ``?`` placeholders and only what SQLite >= 3.35 and
PostgreSQL 15 both accept: ``INSERT ... ON CONFLICT (...) DO NOTHING | DO UPDATE SET
x = excluded.x``, ``RETURNING``, no ``INSERT OR IGNORE/REPLACE``, no ``rowid``, no JSON
functions; booleans are integers, times integer epoch milliseconds, JSON payloads bytes.
The column ``events.user`` is a reserved word on PostgreSQL: it is always quoted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol


class Row(Protocol):
    """A result row, read by column name (sqlite3.Row, psycopg's dict_row)."""

    def __getitem__(self, column: str, /) -> Any: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> Any: ...

    def lock(self, key: str) -> None:
        """Serialise decisions on one flow-control key until the transaction ends.

        Taken before reading the state a decision depends on (the slots held for a
        concurrency key, a throttle's or rate limit's TAT, a debounce, a batch, a
        singleton's active runs, an idempotency claim, a run's open steps), so two
        transactions never decide on the same state.
        """
