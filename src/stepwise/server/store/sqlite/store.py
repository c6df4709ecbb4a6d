"""The SQLite backend: WAL, one group-committing writer thread, a few reader threads."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, TypeVar

import orjson

from ..records import (
    AppRecord,
    EventRecord,
    FunctionRecord,
    HistoryEntry,
    HistoryKind,
    Ingest,
    Job,
    JobKind,
    LeaseLost,
    NewJob,
    RunRecord,
    RunState,
    RunStatus,
    RunUpdate,
    StepMemo,
    Transition,
)
from .writer import GroupCommitWriter

T = TypeVar("T")

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000


def _dump(value: Any) -> bytes:
    return orjson.dumps(value)


def _load(blob: bytes | str | None) -> Any:
    if blob is None:
        return None
    return orjson.loads(blob)


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


_RUN_COLUMNS = (
    "id, function_id, function_slug, event_ids, status, created_at, started_at, ended_at,"
    " output, error, request_version, force_step_plan, cron"
)
_EVENT_COLUMNS = "internal_id, id, name, data, user, ts, v, received_at"
_JOB_COLUMNS = "id, run_id, kind, step_id, attempt, run_at, lease, key, payload"


def _run_from_row(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0],
        function_id=row[1],
        function_slug=row[2],
        event_ids=tuple(_load(row[3])),
        status=RunStatus(row[4]),
        created_at=row[5],
        started_at=row[6],
        ended_at=row[7],
        output=_load(row[8]),
        error=_load(row[9]),
        request_version=row[10],
        force_step_plan=bool(row[11]),
        cron=row[12],
    )


def _event_from_row(row: tuple[Any, ...]) -> EventRecord:
    return EventRecord(
        internal_id=row[0],
        id=row[1],
        name=row[2],
        data=_load(row[3]),
        user=_load(row[4]),
        ts=row[5],
        v=row[6],
        received_at=row[7],
    )


def _job_from_row(row: tuple[Any, ...]) -> Job:
    return Job(
        id=row[0],
        run_id=row[1],
        kind=JobKind(row[2]),
        step_id=row[3],
        attempt=row[4],
        run_at=row[5],
        lease=row[6] or "",
        key=row[7],
        payload=_load(row[8]),
    )


class SqliteStore:
    """``Store`` on one SQLite file.

    ``synchronous`` is ``"FULL"`` (a commit survives power loss) or ``"NORMAL"``
    (survives a killed process; the last commits may be lost with the machine).
    """

    def __init__(self, path: str, *, synchronous: str = "FULL", readers: int = 4) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = path
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

    # ---- lifecycle ----------------------------------------------------------
    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._writer.start)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._writer.stop)
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    @property
    def commits(self) -> int:
        return self._writer.commits

    async def recover_leases(self, now: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE jobs SET run_at = min(run_at, ?), lease = NULL WHERE lease IS NOT NULL",
                (now,),
            )
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
                        (stored.id, fn.name, _dump(fn.config), fn.url, existing[0]),
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
                            _dump(fn.config),
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
            wanted = {_cron_key(slug, expr): (slug, at, expr) for slug, at, expr in cron_jobs}
            ours = old_slugs | {fn.slug for fn in functions}
            for key, payload in conn.execute(
                "SELECT key, payload FROM jobs WHERE kind = ?", (JobKind.CRON.value,)
            ).fetchall():
                # The slug comes from the payload: a function id may itself contain ":".
                if (_load(payload) or {}).get("function_slug") in ours and key not in wanted:
                    conn.execute("DELETE FROM jobs WHERE key = ?", (key,))
            for key, (slug, at, expr) in wanted.items():
                _insert_job(
                    conn,
                    NewJob(
                        run_id=None,
                        kind=JobKind.CRON,
                        run_at=at,
                        key=key,
                        payload={"function_slug": slug, "cron": expr},
                    ),
                )
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
                    config=_load(r[4]),
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
        return await self._writer.run(lambda conn: _apply_ingest(conn, batch))

    async def get_event(self, internal_id: str) -> EventRecord | None:
        def op(conn: sqlite3.Connection) -> EventRecord | None:
            row = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE internal_id = ?", (internal_id,)
            ).fetchone()
            return _event_from_row(row) if row else None

        return await self._read(op)

    async def list_events(
        self,
        *,
        limit: int,
        cursor: str | None,
        name: str | None,
        received_after: int | None,
        received_before: int | None,
    ) -> list[EventRecord]:
        def op(conn: sqlite3.Connection) -> list[EventRecord]:
            where: list[str] = []
            params: list[Any] = []
            if cursor:
                where.append("internal_id < ?")
                params.append(cursor)
            if name:
                where.append("name = ?")
                params.append(name)
            if received_after is not None:
                where.append("received_at >= ?")
                params.append(received_after)
            if received_before is not None:
                where.append("received_at <= ?")
                params.append(received_before)
            sql = f"SELECT {_EVENT_COLUMNS} FROM events"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY internal_id DESC LIMIT ?"
            params.append(limit)
            return [_event_from_row(r) for r in conn.execute(sql, params)]

        return await self._read(op)

    async def get_run(self, run_id: str) -> RunRecord | None:
        def op(conn: sqlite3.Connection) -> RunRecord | None:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            return _run_from_row(row) if row else None

        return await self._read(op)

    async def runs_for_event(self, internal_id: str) -> list[RunRecord]:
        def op(conn: sqlite3.Connection) -> list[RunRecord]:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE event_id = ? ORDER BY id", (internal_id,)
            ).fetchall()
            return [_run_from_row(r) for r in rows]

        return await self._read(op)

    async def load_run_state(self, run_id: str) -> RunState | None:
        return await self._read(lambda conn: _load_run_state(conn, run_id))

    async def list_steps(self, run_id: str) -> list[tuple[str, Any]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, Any]]:
            rows = conn.execute(
                "SELECT step_id, memo FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
            return [(r[0], _load(r[1])) for r in rows]

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
                    data=_load(r[5]),
                )
                for r in rows
            ]

        return await self._read(op)

    # ---- queue ----------------------------------------------------------------
    async def lease_due_jobs(self, now: int, limit: int, lease_ms: int) -> list[Job]:
        return await self._writer.run(lambda conn: _lease(conn, now, limit, lease_ms))

    async def lease_due_work(
        self, now: int, limit: int, lease_ms: int
    ) -> list[tuple[Job, RunState | None]]:
        def op(conn: sqlite3.Connection) -> list[tuple[Job, RunState | None]]:
            jobs = _lease(conn, now, limit, lease_ms)
            states = _load_run_states(conn, [j.run_id for j in jobs if j.run_id])
            return [(job, states.get(job.run_id) if job.run_id else None) for job in jobs]

        return await self._writer.run(op)

    async def next_due_at(self) -> int | None:
        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT min(run_at) FROM jobs").fetchone()
            return row[0] if row else None

        return await self._read(op)

    async def commit(self, transition: Transition) -> None:
        await self._writer.run(lambda conn: _apply_transition(conn, transition))

    async def commit_many(self, transitions: list[Transition]) -> list[BaseException | None]:
        results = await asyncio.gather(
            *(self.commit(t) for t in transitions), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    # ---- test and benchmark helpers ------------------------------------------
    async def count_jobs(self) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM jobs WHERE kind != 'cron'").fetchone()[0])

        return await self._read(op)


def _cron_key(slug: str, expr: str) -> str:
    return f"cron:{slug}:{expr}"


def _lease(conn: sqlite3.Connection, now: int, limit: int, lease_ms: int) -> list[Job]:
    rows = conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE run_at <= ? ORDER BY run_at LIMIT ?", (now, limit)
    ).fetchall()
    jobs = []
    updates = []
    for row in rows:
        lease = secrets.token_hex(8)
        updates.append((lease, now + lease_ms, row[0]))
        job = _job_from_row(row)
        jobs.append(
            Job(
                id=job.id,
                run_id=job.run_id,
                kind=job.kind,
                step_id=job.step_id,
                attempt=job.attempt,
                run_at=job.run_at,  # the time it was due, not its lease expiry
                lease=lease,
                key=job.key,
                payload=job.payload,
            )
        )
    conn.executemany("UPDATE jobs SET lease = ?, run_at = ? WHERE id = ?", updates)
    return jobs


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _load_run_states(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, RunState]:
    """Several runs' state in three queries, however many runs."""
    runs: dict[str, RunRecord] = {}
    for chunk in _chunks(sorted(set(run_ids))):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id IN ({marks})", chunk):
            runs[row[0]] = _run_from_row(row)
    event_ids = sorted({e for run in runs.values() for e in run.event_ids})
    events: dict[str, EventRecord] = {}
    for chunk in _chunks(event_ids):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE internal_id IN ({marks})", chunk
        ):
            events[row[0]] = _event_from_row(row)
    steps: dict[str, list[StepMemo]] = {run_id: [] for run_id in runs}
    for chunk in _chunks(list(runs)):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT run_id, step_id, seq, memo FROM steps WHERE run_id IN ({marks}) ORDER BY run_id, seq",
            chunk,
        ):
            steps[row[0]].append(StepMemo(step_id=row[1], seq=row[2], memo=_load(row[3])))
    return {
        run_id: RunState(
            run=run, events=[events[e] for e in run.event_ids if e in events], steps=steps[run_id]
        )
        for run_id, run in runs.items()
    }


def _load_run_state(conn: sqlite3.Connection, run_id: str) -> RunState | None:
    return _load_run_states(conn, [run_id]).get(run_id)


def _insert_job(conn: sqlite3.Connection, job: NewJob) -> None:
    conn.execute(
        "INSERT INTO jobs (key, run_id, kind, step_id, attempt, run_at, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
        (
            job.key,
            job.run_id,
            job.kind.value,
            job.step_id,
            job.attempt,
            job.run_at,
            _dump(job.payload) if job.payload is not None else None,
        ),
    )


def _apply_ingest(conn: sqlite3.Connection, batch: Ingest) -> list[str]:
    if batch.events:
        conn.executemany(
            f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(internal_id) DO NOTHING",
            [
                (
                    e.internal_id,
                    e.id,
                    e.name,
                    _dump(e.data),
                    _dump(e.user),
                    e.ts,
                    e.v,
                    e.received_at,
                )
                for e in batch.events
            ],
        )
    created: list[str] = []
    for run in batch.runs:
        cur = conn.execute(
            "INSERT INTO idempotency (function_id, key, run_id, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(function_id, key) DO UPDATE SET run_id = excluded.run_id,"
            " expires_at = excluded.expires_at WHERE idempotency.expires_at < ?",
            (
                run.function_id,
                run.idempotency_key,
                run.id,
                run.created_at + IDEMPOTENCY_TTL_MS,
                run.created_at,
            ),
        )
        if cur.rowcount == 0:
            continue  # the same function already ran for this key within 24 h
        conn.execute(
            "INSERT INTO runs (id, function_id, function_slug, event_id, event_ids, status,"
            " created_at, cron) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.id,
                run.function_id,
                run.function_slug,
                run.event_ids[0],
                _dump(list(run.event_ids)),
                RunStatus.SCHEDULED.value,
                run.created_at,
                run.cron,
            ),
        )
        _insert_job(conn, NewJob(run_id=run.id, kind=JobKind.CALL, run_at=run.created_at))
        created.append(run.id)
    return created


def _apply_transition(conn: sqlite3.Connection, t: Transition) -> None:
    row = conn.execute("SELECT lease FROM jobs WHERE id = ?", (t.job_id,)).fetchone()
    if row is None or row[0] != t.lease:
        raise LeaseLost(f"job {t.job_id} is no longer leased by this worker")
    if t.memos and t.run_id is not None:
        seq_row = conn.execute(
            "SELECT coalesce(max(seq), -1) FROM steps WHERE run_id = ?", (t.run_id,)
        ).fetchone()
        seq = int(seq_row[0])
        for step_id, memo in t.memos:
            seq += 1
            # A memo is written once: a step that already has a result keeps it.
            conn.execute(
                "INSERT INTO steps (run_id, step_id, seq, memo) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(run_id, step_id) DO NOTHING",
                (t.run_id, step_id, seq, _dump(memo)),
            )
    if t.run_update is not None and t.run_id is not None:
        _update_run(conn, t.run_id, t.run_update)
    if t.retry_at is not None:
        conn.execute(
            "UPDATE jobs SET attempt = attempt + 1, run_at = ?, lease = NULL WHERE id = ?",
            (t.retry_at, t.job_id),
        )
    elif t.reschedule_at is not None:
        conn.execute(
            "UPDATE jobs SET run_at = ?, lease = NULL WHERE id = ?", (t.reschedule_at, t.job_id)
        )
    elif t.become_call_at is not None:
        conn.execute(
            "UPDATE jobs SET kind = ?, step_id = 'step', attempt = 0, run_at = ?, lease = NULL,"
            " key = NULL, payload = NULL WHERE id = ?",
            (JobKind.CALL.value, t.become_call_at, t.job_id),
        )
    else:
        conn.execute("DELETE FROM jobs WHERE id = ?", (t.job_id,))
    if t.clear_run_jobs and t.run_id is not None:
        conn.execute("DELETE FROM jobs WHERE run_id = ? AND id != ?", (t.run_id, t.job_id))
    for job in t.new_jobs:
        _insert_job(conn, job)
    if t.history and t.run_id is not None:
        conn.executemany(
            "INSERT INTO history (run_id, at, kind, step_id, name, attempt, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    t.run_id,
                    h.at,
                    h.kind.value,
                    h.step_id,
                    h.name,
                    h.attempt,
                    None if h.data is None else _dump(h.data),
                )
                for h in t.history
            ],
        )
    if t.ingest is not None:
        _apply_ingest(conn, t.ingest)


def _update_run(conn: sqlite3.Connection, run_id: str, u: RunUpdate) -> None:
    sets: list[str] = []
    params: list[Any] = []
    if u.status is not None:
        sets.append("status = ?")
        params.append(u.status.value)
    if u.has_output:
        sets.append("output = ?")
        params.append(_dump(u.output))
    if u.error is not None:
        sets.append("error = ?")
        params.append(_dump(u.error))
    if u.request_version is not None:
        sets.append("request_version = ?")
        params.append(u.request_version)
    if u.force_step_plan is not None:
        sets.append("force_step_plan = ?")
        params.append(int(u.force_step_plan))
    if u.started_at is not None:
        sets.append("started_at = coalesce(started_at, ?)")
        params.append(u.started_at)
    if u.ended_at is not None:
        sets.append("ended_at = ?")
        params.append(u.ended_at)
    if not sets:
        return
    params.append(run_id)
    conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", params)
