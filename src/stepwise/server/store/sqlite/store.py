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
from functools import partial
from importlib import resources
from typing import Any, TypeVar

from ..records import (
    AppRecord,
    CancellationRecord,
    Checkpoint,
    CheckpointOutcome,
    EventRecord,
    FunctionRecord,
    HistoryEntry,
    Ingest,
    Job,
    NewJob,
    Pause,
    RunChange,
    RunRecord,
    RunState,
    StoreInUse,
    Transition,
)
from ..sql import apps, cancellations, housekeeping, ingest, leasing, pauses, reads, transitions
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


class SqliteStore:
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
            # at once must not both apply the same migration.
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT coalesce(max(version), 0) FROM schema_version"
                ).fetchone()
                if version > row[0]:
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

    async def _write(self, fn: Callable[[SqliteConn], T]) -> T:
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

    async def recover_leases(self, now: int) -> int:
        def op(conn: SqliteConn) -> int:
            # A dispatch cut off by the stop is a lost one: its job starts a new generation.
            cur = conn.execute(
                "UPDATE jobs SET run_at = min(run_at, ?), lease = NULL, generation = generation + 1"
                " WHERE lease IS NOT NULL",
                (now,),
            )
            # One node owns this file: nothing is in flight after a restart.
            conn.execute("DELETE FROM concurrency_slots")
            return cur.rowcount

        return await self._write(op)

    # ---- apps and functions -------------------------------------------------
    async def sync_app(
        self, app: AppRecord, functions: list[FunctionRecord], cron_jobs: list[tuple[str, int, str]]
    ) -> tuple[AppRecord, bool]:
        def op(conn: SqliteConn) -> tuple[AppRecord, bool]:
            synced = apps.sync_app(conn, app, functions, cron_jobs)
            housekeeping.bump_registry_version(conn)
            return synced

        return await self._write(op)

    async def list_functions(self) -> list[FunctionRecord]:
        return await self._read(apps.list_functions)

    async def list_apps(self) -> list[AppRecord]:
        return await self._read(apps.list_apps)

    # ---- events and runs ----------------------------------------------------
    async def ingest(self, batch: Ingest) -> list[str]:
        return await self._write(lambda conn: ingest.apply_ingest(conn, batch))

    async def get_event(self, internal_id: str) -> EventRecord | None:
        return await self._read(lambda conn: reads.get_event(conn, internal_id))

    async def list_events(
        self,
        *,
        limit: int,
        cursor: tuple[str, int] | None,
        name: str | None,
        received_after: int | None,
        received_before: int | None,
    ) -> list[EventRecord]:
        return await self._read(
            partial(
                reads.list_events,
                limit=limit,
                cursor=cursor,
                name=name,
                received_after=received_after,
                received_before=received_before,
            )
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._read(lambda conn: reads.get_run(conn, run_id))

    async def runs_for_event(self, internal_id: str) -> list[RunRecord]:
        return await self._read(lambda conn: reads.runs_for_event(conn, internal_id))

    async def load_run_state(self, run_id: str) -> RunState | None:
        return await self._read(lambda conn: reads.load_run_state(conn, run_id))

    async def list_steps(self, run_id: str) -> list[tuple[str, Any]]:
        return await self._read(lambda conn: reads.list_steps(conn, run_id))

    async def run_history(self, run_id: str) -> list[HistoryEntry]:
        return await self._read(lambda conn: reads.run_history(conn, run_id))

    # ---- queue ----------------------------------------------------------------
    async def lease_due_jobs(self, now: int, limit: int, lease_ms: int) -> list[Job]:
        return await self._write(lambda conn: leasing.lease(conn, now, limit, lease_ms))

    async def lease_due_work(
        self, now: int, limit: int, lease_ms: int
    ) -> list[tuple[Job, RunState | None]]:
        def op(conn: SqliteConn) -> list[tuple[Job, RunState | None]]:
            jobs = leasing.lease(conn, now, limit, lease_ms)
            states = reads.load_run_states(conn, [j.run_id for j in jobs if j.run_id])
            return [(job, states.get(job.run_id) if job.run_id else None) for job in jobs]

        return await self._write(op)

    async def next_due_at(self) -> int | None:
        return await self._read(leasing.next_due_at)

    async def commit(self, transition: Transition) -> None:
        await self._write(lambda conn: transitions.apply_transition(conn, transition))

    async def checkpoint(self, checkpoint: Checkpoint) -> CheckpointOutcome:
        return await self._write(lambda conn: transitions.save_checkpoint(conn, checkpoint))

    async def release_after_fault(self, job: Job, run_at: int) -> bool:
        return await self._write(
            lambda conn: leasing.release_after_fault(conn, job.id, job.lease, run_at)
        )

    async def commit_many(self, transitions: list[Transition]) -> list[BaseException | None]:
        results = await asyncio.gather(
            *(self.commit(t) for t in transitions), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    async def load_run_states(self, run_ids: list[str]) -> dict[str, RunState]:
        return await self._read(lambda conn: reads.load_run_states(conn, run_ids))

    # ---- pauses -------------------------------------------------------------------
    async def find_pauses(
        self, event_name: str, horizon: int, index_value_at: Callable[[str], str | None]
    ) -> list[Pause]:
        return await self._read(
            lambda conn: pauses.find_pauses(conn, event_name, horizon, index_value_at)
        )

    async def get_pause(self, key: str) -> Pause | None:
        return await self._read(lambda conn: pauses.get_pause(conn, key))

    async def pause_for_signal(self, signal: str) -> Pause | None:
        return await self._read(lambda conn: pauses.pause_for_signal(conn, signal))

    async def run_pauses(self, run_id: str) -> list[Pause]:
        return await self._read(lambda conn: pauses.run_pauses(conn, run_id))

    async def apply_changes(self, changes: list[RunChange]) -> list[bool]:
        return await self._write(
            lambda conn: [transitions.apply_run_change(conn, c) for c in changes]
        )

    async def get_debounce(self, key: str) -> tuple[str, str] | None:
        return await self._read(lambda conn: reads.get_debounce(conn, key))

    # ---- bulk cancellations -------------------------------------------------------
    async def create_cancellation(self, record: CancellationRecord, job: NewJob) -> None:
        await self._write(lambda conn: cancellations.create_cancellation(conn, record, job))

    async def list_cancellations(self) -> list[CancellationRecord]:
        return await self._read(cancellations.list_cancellations)

    async def get_cancellation(self, cancellation_id: str) -> CancellationRecord | None:
        return await self._read(lambda conn: cancellations.get_cancellation(conn, cancellation_id))

    async def delete_cancellation(self, cancellation_id: str) -> bool:
        return await self._write(
            lambda conn: cancellations.delete_cancellation(conn, cancellation_id)
        )

    async def active_runs(
        self,
        function_slug: str,
        *,
        after_run_id: str,
        created_before: int,
        created_after: int | None,
        limit: int,
    ) -> list[RunState]:
        return await self._read(
            partial(
                reads.active_runs,
                function_slug=function_slug,
                after_run_id=after_run_id,
                created_before=created_before,
                created_after=created_after,
                limit=limit,
            )
        )

    # ---- test and benchmark helpers ------------------------------------------
    async def count_jobs(self) -> int:
        return await self._read(reads.count_jobs)

    # ---- many nodes ---------------------------------------------------------------
    @property
    def exclusive(self) -> bool:
        return self._exclusive

    async def renew_leases(self, leases: list[tuple[int, str]], until: int) -> set[int]:
        if not leases:
            return set()
        return await self._write(lambda conn: housekeeping.renew_leases(conn, leases, until))

    async def registry_version(self) -> int:
        return await self._read(housekeeping.registry_version)

    async def purge_finished(self, before: int, limit: int) -> int:
        return await self._write(lambda conn: housekeeping.purge_finished(conn, before, limit))
