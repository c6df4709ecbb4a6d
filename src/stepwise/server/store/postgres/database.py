"""PostgreSQL plumbing: connections, the ``Conn`` adapter, migrations, reads and LISTEN.

Everything here is about reaching the database; nothing knows a table but the
migrations. The shared persistence functions (``store/sql/``) run unchanged on a
``PgConn``: it rewrites their ``?`` placeholders and serialises flow-control keys with
transaction-scoped advisory locks.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import psycopg
from psycopg import BaseConnection, sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import DatabaseUnavailable
from ..sql.conn import Cursor

T = TypeVar("T")

PgConnection = psycopg.Connection[DictRow]

# A dead peer (a pulled cable, a frozen VM) is noticed within ~25 s instead of the
# kernel's two hours, so a LISTEN connection or an idle writer reconnects by itself.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}

# pg_advisory_lock key held while migrating: "Stepwise" in ASCII.
MIGRATION_LOCK = 0x5374_6570_7769_7365


# ---- the Conn adapter ------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def to_pyformat(query: str) -> str:
    """``?`` placeholders to psycopg's ``%s``; a literal ``%`` is escaped as ``%%``.

    A ``?`` inside a quoted string, a quoted identifier or a ``--`` comment is left alone.
    Queries are constants in the code, so the cache holds each one once.
    """
    out: list[str] = []
    until: str | None = None  # what ends the quote or comment we are in
    for i, ch in enumerate(query):
        if ch == "%":
            out.append("%%")
        elif until is not None:
            out.append(ch)
            if ch == until:
                until = None
        elif ch in "'\"":
            until = ch
            out.append(ch)
        elif ch == "-" and query.startswith("--", i):
            until = "\n"
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


def _adapt(params: Sequence[Any]) -> Sequence[Any]:
    # Booleans are stored as integers on both backends; psycopg would send a boolean,
    # which PostgreSQL refuses for an INTEGER column.
    for p in params:
        if type(p) is bool:
            return [int(x) if type(x) is bool else x for x in params]
    return params


class PgConn:
    """The ``store/sql`` ``Conn`` protocol on one psycopg connection (rows as dicts).

    With ``pipeline`` (the writer's connections) statements are sent without waiting for
    their results: a statement costs a round trip only when its rows or its row count are
    read, so the writes of an operation share the round trip of its next read. Errors
    then surface at that read or at the writer's sync that ends the operation.
    """

    __slots__ = ("pipeline", "raw")

    def __init__(self, raw: PgConnection, pipeline: psycopg.Pipeline | None = None) -> None:
        self.raw = raw
        self.pipeline = pipeline

    def execute(self, query: str, params: Sequence[Any] = ()) -> Cursor:
        cur = self.raw.execute(to_pyformat(query), _adapt(params))
        return cur if self.pipeline is None else _Pipelined(cur, self.pipeline)

    def executemany(self, query: str, seq: Iterable[Sequence[Any]]) -> None:
        cur = self.raw.cursor()
        cur.executemany(to_pyformat(query), [_adapt(p) for p in seq])

    def lock(self, key: str) -> None:
        """Serialise decisions on ``key`` with every other node until this transaction ends."""
        self.raw.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))


class _Pipelined:
    """A statement sent in pipeline mode: its result is waited for when first read."""

    __slots__ = ("_cur", "_pipeline")

    def __init__(self, cur: psycopg.Cursor[DictRow], pipeline: psycopg.Pipeline) -> None:
        self._cur = cur
        self._pipeline = pipeline

    @property
    def rowcount(self) -> int:
        # A command without rows has nothing to fetch: unless a later statement's read
        # brought its result back already, a sync does (and raises its error, or an
        # earlier statement's, here rather than later).
        if self._cur.pgresult is None:
            self._pipeline.sync()
        return self._cur.rowcount

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()


def connect(conninfo: str, *, application_name: str = "stepwise") -> PgConnection:
    """A sync connection in autocommit mode (callers say BEGIN), rows as dicts."""
    return psycopg.connect(
        conninfo,
        autocommit=True,
        row_factory=dict_row,
        application_name=application_name,
        **KEEPALIVES,
    )


def is_disconnect(exc: BaseException, conn: BaseConnection[Any] | None = None) -> bool:
    """Whether ``exc`` means the connection is gone (as opposed to a failed statement)."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if conn is not None and (conn.broken or conn.closed):
        return True
    state = exc.sqlstate
    # No SQLSTATE: the client lost the socket. 08: connection exception. 57P0x: the server
    # is shutting down or terminated this backend.
    return state is None or state.startswith("08") or state.startswith("57P0")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter, so many nodes do not reconnect in lockstep."""

    initial: float = 0.05
    maximum: float = 2.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 32))
        return base * random.uniform(0.5, 1.0)


# ---- migrations ----------------------------------------------------------------------


def migrations() -> list[tuple[int, str]]:
    """The versioned schema scripts of this backend, in order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = [
        (int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Bring the database to the newest schema; return the versions applied now.

    Safe when several nodes start at once: the first takes an advisory lock and applies
    what is missing in one transaction (DDL is transactional), the others wait for the
    lock, then find nothing left to do. Versions are recorded in ``schema_version`` as on
    SQLite.
    """
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        rows = conn.execute("SELECT version FROM schema_version").fetchall()
        # Every version not yet recorded, not only those above the newest: numbers may have
        # gaps, and a branch's migration may be merged after a later-numbered one applied.
        done = {_first(row) for row in rows}
        for version, script in migrations():
            if version not in done:
                conn.execute(script)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
                applied.append(version)
    return applied


def _first(row: Any) -> int:
    value = next(iter(row.values())) if isinstance(row, dict) else row[0]
    return int(value)


def migrate_uri(conninfo: str) -> list[int]:
    """``migrate`` on a connection of its own."""
    with connect(conninfo, application_name="stepwise-migrate") as conn:
        return migrate(conn)


# ---- reads ---------------------------------------------------------------------------


class ReadPool:
    """Reads off the event loop: the shared sync read functions, run in threads.

    A sync psycopg pool feeds a thread pool of the same size, as SQLite's reader threads
    do, so ``store/sql`` read functions run here unchanged. Connections are in autocommit
    mode: each statement reads its own snapshot, as on SQLite.
    """

    def __init__(
        self, conninfo: str, *, size: int = 4, timeout: float = 5.0, name: str = "stepwise-read"
    ) -> None:
        self._pool: ConnectionPool[PgConnection] = ConnectionPool(
            conninfo,
            connection_class=PgConnection,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "application_name": name,
                **KEEPALIVES,
            },
            min_size=1,
            max_size=size,
            timeout=timeout,
            open=False,
            name=name,
        )
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    def open(self, *, wait: bool = True) -> None:
        try:
            self._pool.open(wait=wait)
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        self._pool.close()

    async def run(self, fn: Callable[[PgConn], T]) -> T:
        """``fn(conn)`` in a reader thread; ``DatabaseUnavailable`` if the database is gone."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self.run_sync, fn)

    def run_sync(self, fn: Callable[[PgConn], T]) -> T:
        # A pooled connection may have died with a database restart since its last use;
        # a read is safe to repeat, so it gets one more try on a fresh connection.
        for attempt in (1, 2):
            conn: PgConnection | None = None
            try:
                with self._pool.connection() as conn:
                    return fn(PgConn(conn))
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if not is_disconnect(exc, conn):
                    raise
                if attempt == 2 or isinstance(exc, PoolTimeout):
                    raise DatabaseUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
        raise AssertionError("unreachable")


# ---- LISTEN --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wakeup:
    """A notification, or (``channel`` None) news that the listener (re)connected.

    Notifications sent while the listener was disconnected are lost, so a reconnect
    means "anything may have happened": look at the database again.
    """

    channel: str | None
    payload: str = ""

    @property
    def connected(self) -> bool:
        return self.channel is None


async def listen(
    conninfo: str, channels: Sequence[str], *, backoff: Backoff | None = None
) -> AsyncGenerator[Wakeup, None]:
    """Notifications on ``channels``, from one connection that reconnects by itself.

    The first item is a ``connected`` wakeup once LISTEN is in place (so a caller can wait
    for it before relying on notifications), and another follows every reconnect.
    Closing the generator closes the connection.
    """
    backoff = backoff or Backoff()
    failures = 0
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(
                conninfo, autocommit=True, application_name="stepwise-listen", **KEEPALIVES
            )
        except psycopg.OperationalError:
            await asyncio.sleep(backoff.delay(failures))
            failures += 1
            continue
        try:
            async with conn:
                for channel in channels:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                failures = 0
                yield Wakeup(None)
                async for note in conn.notifies():
                    yield Wakeup(note.channel, note.payload)
        except psycopg.OperationalError as exc:
            if not is_disconnect(exc, conn):
                raise
        await asyncio.sleep(backoff.delay(failures))
        failures += 1
