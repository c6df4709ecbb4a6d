"""Group commit: one thread owns the SQLite write connection and batches callers.

Each caller's operation runs inside its own SAVEPOINT in a shared transaction, so one
failing operation rolls back alone; every caller is answered only after the COMMIT
that made its writes durable. Under load many operations share one fsync.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..answers import answer
from .connection import SqliteConn

T = TypeVar("T")

Operation = Callable[[SqliteConn], Any]

# How many operations may share one transaction; bounds the latency of the first.
MAX_BATCH = 512


class _Item:
    __slots__ = ("fn", "future", "loop")

    def __init__(
        self, fn: Operation, future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop


class GroupCommitWriter:
    def __init__(self, connect: Callable[[], SqliteConn]) -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.commits = 0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="stepwise-sqlite-writer", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def stop(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    async def run(self, fn: Callable[[SqliteConn], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Item(fn, future, loop))
        return await future

    def _loop(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._commit_batch(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _commit_batch(self, conn: SqliteConn, batch: list[_Item]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in batch:
                conn.execute("SAVEPOINT op")
                try:
                    result = item.fn(conn)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((None, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((result, None))
            conn.execute("COMMIT")
            self.commits += 1
        except BaseException as exc:
            # The transaction itself failed (disk full, I/O error): nobody's writes landed.
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            outcomes = [(None, exc)] * len(batch)
        for item, (result, error) in zip(batch, outcomes, strict=True):
            answer(item.loop, item.future, result, error)
