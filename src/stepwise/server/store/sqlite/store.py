"""The SQLite backend: WAL, one group-committing writer thread, a few reader threads."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
    HistoryKind,
    Ingest,
    Job,
    JobKind,
    NewJob,
    Pause,
    RunChange,
    RunRecord,
    RunState,
    StoreInUse,
    Transition,
)
from ..sql import housekeeping
from .rows import (
    CANCELLATION_COLUMNS,
    EVENT_COLUMNS,
    PAUSE_COLUMNS,
    RUN_COLUMNS,
    cancellation_from_row,
    dump,
    event_from_row,
    load,
    load_run_state,
    load_run_states,
    pause_from_row,
    run_from_row,
)
from .writer import GroupCommitWriter
from .writes import (
    ACTIVE,
    apply_ingest,
    apply_run_change,
    apply_transition,
    cron_key,
    insert_job,
    lease,
    release_after_fault,
    save_checkpoint,
)

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
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()

    # ---- connections --------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        conn = self._connect()
        self._migrate(conn)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
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

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))

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
        def op(conn: sqlite3.Connection) -> int:
            # A dispatch cut off by the stop is a lost one: its job starts a new generation.
            cur = conn.execute(
                "UPDATE jobs SET run_at = min(run_at, ?), lease = NULL, generation = generation + 1"
                " WHERE lease IS NOT NULL",
                (now,),
            )
            # One node owns this file: nothing is in flight after a restart.
            conn.execute("DELETE FROM concurrency_slots")
            return cur.rowcount

        return await self._writer.run(op)

    # ---- apps and functions -------------------------------------------------
    async def sync_app(
        self, app: AppRecord, functions: list[FunctionRecord], cron_jobs: list[tuple[str, int, str]]
    ) -> tuple[AppRecord, bool]:
        def op(conn: sqlite3.Connection) -> tuple[AppRecord, bool]:
            row = conn.execute(
                "SELECT id, checksum, created_at FROM apps WHERE name = ?", (app.name,)
            ).fetchone()
            stored = app
            modified = True
            if row is not None:
                stored = AppRecord(
                    id=row[0],
                    name=app.name,
                    url=app.url,
                    sdk=app.sdk,
                    framework=app.framework,
                    checksum=app.checksum,
                    created_at=row[2],
                    updated_at=app.updated_at,
                )
                modified = row[1] != app.checksum
                conn.execute(
                    "UPDATE apps SET url=?, sdk=?, framework=?, checksum=?, updated_at=? WHERE id=?",
                    (app.url, app.sdk, app.framework, app.checksum, app.updated_at, stored.id),
                )
            else:
                conn.execute(
                    "INSERT INTO apps (id, name, url, sdk, framework, checksum, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        app.id,
                        app.name,
                        app.url,
                        app.sdk,
                        app.framework,
                        app.checksum,
                        app.created_at,
                        app.updated_at,
                    ),
                )
            old_slugs = {
                r[0]
                for r in conn.execute("SELECT slug FROM functions WHERE app_id = ?", (stored.id,))
            }
            keep: list[str] = []
            for fn in functions:
                existing = conn.execute(
                    "SELECT id FROM functions WHERE slug = ?", (fn.slug,)
                ).fetchone()
                if existing is not None:
                    conn.execute(
                        "UPDATE functions SET app_id=?, name=?, config=?, url=? WHERE id=?",
                        (stored.id, fn.name, dump(fn.config), fn.url, existing[0]),
                    )
                    keep.append(existing[0])
                else:
                    conn.execute(
                        "INSERT INTO functions (id, app_id, slug, name, config, url, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            fn.id,
                            stored.id,
                            fn.slug,
                            fn.name,
                            dump(fn.config),
                            fn.url,
                            fn.created_at,
                        ),
                    )
                    keep.append(fn.id)
            params: list[Any] = [stored.id, *keep]
            conn.execute(
                "DELETE FROM functions WHERE app_id = ?"
                + (f" AND id NOT IN ({','.join('?' * len(keep))})" if keep else ""),
                params,
            )
            # Cron jobs are keyed by function slug and expression, so a re-sync keeps the
            # schedule it had; schedules the app no longer declares are dropped.
            wanted = {cron_key(slug, expr): (slug, at, expr) for slug, at, expr in cron_jobs}
            ours = old_slugs | {fn.slug for fn in functions}
            for key, payload in conn.execute(
                "SELECT key, payload FROM jobs WHERE kind = ?", (JobKind.CRON.value,)
            ).fetchall():
                # The slug comes from the payload: a function id may itself contain ":".
                if (load(payload) or {}).get("function_slug") in ours and key not in wanted:
                    conn.execute("DELETE FROM jobs WHERE key = ?", (key,))
            for key, (slug, at, expr) in wanted.items():
                insert_job(
                    conn,
                    NewJob(
                        run_id=None,
                        kind=JobKind.CRON,
                        run_at=at,
                        key=key,
                        payload={"function_slug": slug, "cron": expr},
                    ),
                )
            housekeeping.bump_registry_version(_by_name(conn))
            return stored, modified

        return await self._writer.run(op)

    async def list_functions(self) -> list[FunctionRecord]:
        def op(conn: sqlite3.Connection) -> list[FunctionRecord]:
            rows = conn.execute(
                "SELECT id, app_id, slug, name, config, url, created_at FROM functions ORDER BY slug"
            ).fetchall()
            return [
                FunctionRecord(
                    id=r[0],
                    app_id=r[1],
                    slug=r[2],
                    name=r[3],
                    config=load(r[4]),
                    url=r[5],
                    created_at=r[6],
                )
                for r in rows
            ]

        return await self._read(op)

    async def list_apps(self) -> list[AppRecord]:
        def op(conn: sqlite3.Connection) -> list[AppRecord]:
            rows = conn.execute(
                "SELECT id, name, url, sdk, framework, checksum, created_at, updated_at FROM apps"
                " ORDER BY name"
            ).fetchall()
            return [AppRecord(*r) for r in rows]

        return await self._read(op)

    # ---- events and runs ----------------------------------------------------
    async def ingest(self, batch: Ingest) -> list[str]:
        return await self._writer.run(lambda conn: apply_ingest(conn, batch))

    async def get_event(self, internal_id: str) -> EventRecord | None:
        def op(conn: sqlite3.Connection) -> EventRecord | None:
            row = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE internal_id = ? AND copy = 0",
                (internal_id,),
            ).fetchone()
            return event_from_row(row) if row else None

        return await self._read(op)

    async def list_events(
        self,
        *,
        limit: int,
        cursor: tuple[str, int] | None,
        name: str | None,
        received_after: int | None,
        received_before: int | None,
    ) -> list[EventRecord]:
        def op(conn: sqlite3.Connection) -> list[EventRecord]:
            where: list[str] = []
            params: list[Any] = []
            if cursor:
                where.append("(internal_id, copy) < (?, ?)")
                params.extend(cursor)
            if name:
                where.append("name = ?")
                params.append(name)
            if received_after is not None:
                where.append("received_at >= ?")
                params.append(received_after)
            if received_before is not None:
                where.append("received_at <= ?")
                params.append(received_before)
            sql = f"SELECT {EVENT_COLUMNS} FROM events"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY internal_id DESC, copy DESC LIMIT ?"
            params.append(limit)
            return [event_from_row(r) for r in conn.execute(sql, params)]

        return await self._read(op)

    async def get_run(self, run_id: str) -> RunRecord | None:
        def op(conn: sqlite3.Connection) -> RunRecord | None:
            row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
            return run_from_row(row) if row else None

        return await self._read(op)

    async def runs_for_event(self, internal_id: str) -> list[RunRecord]:
        def op(conn: sqlite3.Connection) -> list[RunRecord]:
            rows = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE event_id = ? ORDER BY id", (internal_id,)
            ).fetchall()
            return [run_from_row(r) for r in rows]

        return await self._read(op)

    async def load_run_state(self, run_id: str) -> RunState | None:
        return await self._read(lambda conn: load_run_state(conn, run_id))

    async def list_steps(self, run_id: str) -> list[tuple[str, Any]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, Any]]:
            rows = conn.execute(
                "SELECT step_id, memo FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
            return [(r[0], load(r[1])) for r in rows]

        return await self._read(op)

    async def run_history(self, run_id: str) -> list[HistoryEntry]:
        def op(conn: sqlite3.Connection) -> list[HistoryEntry]:
            rows = conn.execute(
                "SELECT kind, at, step_id, name, attempt, data FROM history WHERE run_id = ? ORDER BY id",
                (run_id,),
            ).fetchall()
            return [
                HistoryEntry(
                    kind=HistoryKind(r[0]),
                    at=r[1],
                    step_id=r[2],
                    name=r[3],
                    attempt=r[4],
                    data=load(r[5]),
                )
                for r in rows
            ]

        return await self._read(op)

    # ---- queue ----------------------------------------------------------------
    async def lease_due_jobs(self, now: int, limit: int, lease_ms: int) -> list[Job]:
        return await self._writer.run(lambda conn: lease(conn, now, limit, lease_ms))

    async def lease_due_work(
        self, now: int, limit: int, lease_ms: int
    ) -> list[tuple[Job, RunState | None]]:
        def op(conn: sqlite3.Connection) -> list[tuple[Job, RunState | None]]:
            jobs = lease(conn, now, limit, lease_ms)
            states = load_run_states(conn, [j.run_id for j in jobs if j.run_id])
            return [(job, states.get(job.run_id) if job.run_id else None) for job in jobs]

        return await self._writer.run(op)

    async def next_due_at(self) -> int | None:
        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT min(run_at) FROM jobs").fetchone()
            return row[0] if row else None

        return await self._read(op)

    async def commit(self, transition: Transition) -> None:
        await self._writer.run(lambda conn: apply_transition(conn, transition))

    async def checkpoint(self, checkpoint: Checkpoint) -> CheckpointOutcome:
        return await self._writer.run(lambda conn: save_checkpoint(conn, checkpoint))

    async def release_after_fault(self, job: Job, run_at: int) -> bool:
        return await self._writer.run(
            lambda conn: release_after_fault(conn, job.id, job.lease, run_at)
        )

    async def commit_many(self, transitions: list[Transition]) -> list[BaseException | None]:
        results = await asyncio.gather(
            *(self.commit(t) for t in transitions), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    async def load_run_states(self, run_ids: list[str]) -> dict[str, RunState]:
        return await self._read(lambda conn: load_run_states(conn, run_ids))

    # ---- pauses -------------------------------------------------------------------
    async def find_pauses(
        self, event_name: str, horizon: int, index_value_at: Callable[[str], str | None]
    ) -> list[Pause]:
        """Pauses on ``event_name`` written before ``horizon`` that this event could match.

        Indexed pauses are looked up by (path, value): ``index_value_at(path)`` gives the
        event's canonical value at each indexed path. Unindexed pauses are all candidates.
        """

        def op(conn: sqlite3.Connection) -> list[Pause]:
            # The distinct index paths of this event name, one index seek each: a plain
            # DISTINCT would walk every pause of the name.
            paths = [
                r[0]
                for r in conn.execute(
                    "WITH RECURSIVE p(path) AS ("
                    " SELECT min(index_path) FROM pauses WHERE event_name = ?1 AND index_path IS NOT NULL"
                    " UNION ALL"
                    " SELECT (SELECT min(index_path) FROM pauses WHERE event_name = ?1 AND index_path > p.path)"
                    " FROM p WHERE p.path IS NOT NULL"
                    ") SELECT path FROM p WHERE path IS NOT NULL",
                    (event_name,),
                )
            ]
            rows = conn.execute(
                f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE event_name = ? AND index_path IS NULL AND id <= ?",
                (event_name, horizon),
            ).fetchall()
            for path in paths:
                value = index_value_at(path)
                if value is None:
                    continue
                rows.extend(
                    conn.execute(
                        f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE event_name = ? AND index_path = ?"
                        " AND index_value = ? AND id <= ?",
                        (event_name, path, value, horizon),
                    ).fetchall()
                )
            return sorted((pause_from_row(r) for r in rows), key=lambda p: p.id)

        return await self._read(op)

    async def get_pause(self, key: str) -> Pause | None:
        def op(conn: sqlite3.Connection) -> Pause | None:
            row = conn.execute(
                f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE key = ?", (key,)
            ).fetchone()
            return pause_from_row(row) if row else None

        return await self._read(op)

    async def pause_for_signal(self, signal: str) -> Pause | None:
        def op(conn: sqlite3.Connection) -> Pause | None:
            row = conn.execute(
                f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE signal = ?", (signal,)
            ).fetchone()
            return pause_from_row(row) if row else None

        return await self._read(op)

    async def run_pauses(self, run_id: str) -> list[Pause]:
        def op(conn: sqlite3.Connection) -> list[Pause]:
            rows = conn.execute(
                f"SELECT {PAUSE_COLUMNS} FROM pauses WHERE run_id = ? ORDER BY id", (run_id,)
            )
            return [pause_from_row(r) for r in rows]

        return await self._read(op)

    async def apply_changes(self, changes: list[RunChange]) -> list[bool]:
        """Apply guarded run changes outside any job, in one transaction; which applied."""
        return await self._writer.run(lambda conn: [apply_run_change(conn, c) for c in changes])

    async def get_debounce(self, key: str) -> tuple[str, str] | None:
        """The (function id, event id) a debounce holds for ``key``."""

        def op(conn: sqlite3.Connection) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT function_id, event_id FROM debounces WHERE key = ?", (key,)
            ).fetchone()
            return (row[0], row[1]) if row else None

        return await self._read(op)

    # ---- bulk cancellations -------------------------------------------------------
    async def create_cancellation(self, record: CancellationRecord, job: NewJob) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO cancellations (id, app_id, function_slug, started_after, started_before,"
                " expression, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.app_id,
                    record.function_slug,
                    record.started_after,
                    record.started_before,
                    record.expression,
                    record.created_at,
                ),
            )
            insert_job(conn, job)

        await self._writer.run(op)

    async def list_cancellations(self) -> list[CancellationRecord]:
        return await self._read(
            lambda conn: [
                cancellation_from_row(r)
                for r in conn.execute(
                    f"SELECT {CANCELLATION_COLUMNS} FROM cancellations ORDER BY created_at DESC, id DESC"
                )
            ]
        )

    async def get_cancellation(self, cancellation_id: str) -> CancellationRecord | None:
        def op(conn: sqlite3.Connection) -> CancellationRecord | None:
            row = conn.execute(
                f"SELECT {CANCELLATION_COLUMNS} FROM cancellations WHERE id = ?",
                (cancellation_id,),
            ).fetchone()
            return cancellation_from_row(row) if row else None

        return await self._read(op)

    async def delete_cancellation(self, cancellation_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM cancellations WHERE id = ?", (cancellation_id,))
            conn.execute("DELETE FROM jobs WHERE key = ?", (f"cancel_bulk:{cancellation_id}",))
            return cur.rowcount > 0

        return await self._writer.run(op)

    async def active_runs(
        self,
        function_slug: str,
        *,
        after_run_id: str,
        created_before: int,
        created_after: int | None,
        limit: int,
    ) -> list[RunState]:
        """Active runs of a function in a creation window, by run id, after a cursor."""

        def op(conn: sqlite3.Connection) -> list[RunState]:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM runs WHERE function_slug = ? AND id > ? AND status IN (?, ?)"
                    " AND created_at <= ? AND created_at >= ? ORDER BY id LIMIT ?",
                    (
                        function_slug,
                        after_run_id,
                        *ACTIVE,
                        created_before,
                        created_after or 0,
                        limit,
                    ),
                )
            ]
            states = load_run_states(conn, ids)
            return [states[i] for i in ids if i in states]

        return await self._read(op)

    # ---- test and benchmark helpers ------------------------------------------
    async def count_jobs(self) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM jobs WHERE kind != 'cron'").fetchone()[0])

        return await self._read(op)

    # ---- many nodes ---------------------------------------------------------------
    @property
    def exclusive(self) -> bool:
        return self._exclusive

    async def renew_leases(self, leases: list[tuple[int, str]], until: int) -> set[int]:
        if not leases:
            return set()
        return await self._writer.run(
            lambda conn: housekeeping.renew_leases(_by_name(conn), leases, until)
        )

    async def registry_version(self) -> int:
        return await self._read(lambda conn: housekeeping.registry_version(_by_name(conn)))

    async def purge_finished(self, before: int, limit: int) -> int:
        return await self._writer.run(
            lambda conn: housekeeping.purge_finished(_by_name(conn), before, limit)
        )


class _ByName:
    """A connection whose rows read by column name, for the backend-neutral ``sql/`` code."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        cur = self._conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, params)


def _by_name(conn: sqlite3.Connection) -> _ByName:
    return _ByName(conn)
