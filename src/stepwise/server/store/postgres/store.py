"""The PostgreSQL backend: many server nodes on one database.

The operations are ``SqlStore``'s, the same ``store/sql/`` functions SQLite runs. What is
PostgreSQL's own: writes go through writer threads that group-commit (``writer.py``),
leases lock the jobs they take with ``FOR UPDATE SKIP LOCKED`` so that two nodes never
take the same job, reads run on a pool, and a write that creates work notifies every node
through ``LISTEN/NOTIFY`` so that idle ones look at the queue at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

from ..sql import leasing
from ..sql.store import SqlStore
from .database import PgConn, ReadPool, listen, migrate_uri
from .writer import PgWriter

T = TypeVar("T")
log = logging.getLogger(__name__)

CHANNEL = "stepwise_wake"


class PostgresStore(SqlStore):
    """``Store`` on a PostgreSQL database shared by any number of server nodes."""

    lease_row_locks = leasing.SKIP_LOCKED

    def __init__(self, uri: str, *, writers: int = 1, readers: int = 4) -> None:
        self.uri = uri
        self._writer = PgWriter(uri, threads=writers)
        self._reads = ReadPool(uri, size=readers)
        self._listeners: list[Callable[[str], None]] = []
        self._listen_task: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------------
    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        applied = await loop.run_in_executor(None, migrate_uri, self.uri)
        if applied:
            log.info("migrated the PostgreSQL schema to version %d", applied[-1])
        await loop.run_in_executor(None, self._writer.start)
        try:
            await loop.run_in_executor(None, self._reads.open)
        except BaseException:
            await loop.run_in_executor(None, self._writer.stop)
            raise
        self._listen_task = asyncio.create_task(self._listen(), name="stepwise-pg-listen")

    async def close(self) -> None:
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
            self._listen_task = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._writer.stop)
        await loop.run_in_executor(None, self._reads.close)

    @property
    def exclusive(self) -> bool:
        """Other nodes may share the database: never take their leases at start."""
        return False

    @property
    def commits(self) -> int:
        return self._writer.commits

    # ---- running functions ----------------------------------------------------------
    async def _read(self, fn: Callable[[PgConn], T]) -> T:
        return await self._reads.run(fn)

    async def _write(self, fn: Callable[[PgConn], T], *, wake: tuple[str, ...] = ()) -> T:
        return await self._writer.run(fn, notify=[(CHANNEL, topic) for topic in wake])

    # ---- other nodes' news ------------------------------------------------------------
    def on_change(self, wake: Callable[[str], None]) -> None:
        self._listeners.append(wake)

    async def _listen(self) -> None:
        notes = listen(self.uri, [CHANNEL])
        try:
            async for note in notes:
                # After a (re)connect anything may have happened unheard: look at everything.
                topics = ["jobs", "registry"] if note.connected else [note.payload]
                for topic in topics:
                    for wake in self._listeners:
                        try:
                            wake(topic)
                        except Exception:
                            log.exception("a wake-up handler failed")
        finally:
            await notes.aclose()
