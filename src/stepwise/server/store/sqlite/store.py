"""The SQLite backend: WAL, one group-committing writer thread, a few reader threads.

Every operation is a function of ``store/sql/`` run on the writer (inside its shared
transaction) or on a reader connection.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TypeVar

from ..records import StoreInUse
from ..sql.store import SqlStore
from .connection import SqliteConn, connect
from .writer import GroupCommitWriter

T = TypeVar("T")


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            # Comment lines go first: they may hold semicolons, and statements are split on them.
            text = "\n".join(
                line
                for line in entry.read_text(encoding="utf-8").splitlines()
                if not line.lstrip().startswith("--")
            )
            found.append((int(name.split("_", 1)[0]), text))
    return sorted(found)


class SqliteStore(SqlStore):
    """``Store`` on one SQLite file.

    ``synchronous`` is ``"FULL"`` (a commit survives power loss) or ``"NORMAL"``
    (survives a killed process; the last commits may be lost with the machine).

    ``exclusive`` (the default, and what a server uses) takes a lock on the file
    ``<path>.lock`` before the database is touched and holds it until ``close``: a second
    exclusive store on the same file, in this process or another, refuses to open
    (``StoreInUse``). Only an exclusive store may ``recover_leases``.
    """

    def __init__(
        self, path: str, *, synchronous: str = "FULL", readers: int = 4, exclusive: bool = True
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = path
        self._exclusive = exclusive
        self._lock_fd: int | None = None
        self.synchronous = synchronous.upper()
        self._writer = GroupCommitWriter(self._connect_writer)
        self._readers = ThreadPoolExecutor(
            max_workers=readers, thread_name_prefix="stepwise-sqlite-read"
        )
        self._local = threading.local()
        self._reader_conns: list[SqliteConn] = []
        self._reader_lock = threading.Lock()

    # ---- connections --------------------------------------------------------
    def _connect(self) -> SqliteConn:
        return connect(self.path, self.synchronous)

    def _connect_writer(self) -> SqliteConn:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        conn = self._connect()
        self._migrate(conn)
        return conn

    def _migrate(self, conn: SqliteConn) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        for version, sql in _migrations():
            # The version is read under the write lock: two processes opening a new file
            # at once must not both apply the same migration. Each version is looked up on
            # its own, not compared with the newest applied: numbers may have gaps, and a
            # branch's migration may be merged after a later-numbered one was applied.
            conn.execute("BEGIN IMMEDIATE")
            try:
                applied = conn.execute(
                    "SELECT 1 FROM schema_version WHERE version = ?", (version,)
                ).fetchone()
                if applied is None:
                    for statement in sql.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _reader(self) -> SqliteConn:
        conn: SqliteConn | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[SqliteConn], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))

    async def _write(self, fn: Callable[[SqliteConn], T], *, wake: tuple[str, ...] = ()) -> T:
        # One process owns the file: the engine wakes its own worker, nobody else to tell.
        return await self._writer.run(fn)

    def _take_file_lock(self) -> None:
        """Own the database file, or refuse at once if another store owns it.

        ``flock`` locks belong to the open file, so the kernel drops the lock when the
        process dies however it dies (kill -9 included): no stale lock is ever left behind.
        """
        lock_path = os.path.abspath(self.path) + ".lock"
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreInUse(
                f"the database {self.path} is in use by another Stepwise server"
                f" (it holds the lock {lock_path}); a SQLite database serves one server"
                " process: stop the other one, or give this one its own --sqlite-path"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def _release_file_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the file releases its lock
            self._lock_fd = None

    # ---- lifecycle ----------------------------------------------------------
    async def open(self) -> None:
        if self._exclusive:
            self._take_file_lock()
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.start)
        except BaseException:
            self._release_file_lock()
            raise

    async def close(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.stop)
            self._readers.shutdown(wait=True)
            with self._reader_lock:
                for conn in self._reader_conns:
                    conn.close()
                self._reader_conns.clear()
        finally:
            self._release_file_lock()

    @property
    def commits(self) -> int:
        return self._writer.commits

    @property
    def exclusive(self) -> bool:
        return self._exclusive
