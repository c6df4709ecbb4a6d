"""The storage contract: every test runs once per backend, each on a fresh real database.

A backend is one entry in ``BACKENDS`` and one ``Backend`` subclass that knows how to
build a store on a fresh database and how to read that database's schema. Adding
PostgreSQL is one more entry and one more class; the tests themselves do not change.
"""

from __future__ import annotations

import abc
import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _clock import FAR, MINUTE, T0

from stepwise.server.store.base import Store
from stepwise.server.store.postgres.store import PostgresStore
from stepwise.server.store.records import (
    AppRecord,
    EventRecord,
    FunctionRecord,
    Ingest,
    Job,
    NewRun,
    Transition,
)
from stepwise.server.store.sqlite.store import SqliteStore

# Every backend the contract runs against. Add "postgres" here (and a class below).
BACKENDS = ["sqlite", "postgres"]


class Backend(abc.ABC):
    """One database for one test. ``new_store`` may be called more than once (re-open)."""

    name: str

    @abc.abstractmethod
    def new_store(self) -> Store: ...

    @abc.abstractmethod
    def schema(self) -> dict[str, list[str]]:
        """User tables of the database and their columns, in declaration order."""

    @abc.abstractmethod
    def schema_versions(self) -> list[int]:
        """Every row of the migration bookkeeping table, in insertion order."""

    def commits(self, store: Store) -> int | None:
        """How many database transactions the store has committed, if it counts them."""
        return None


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "stepwise.db"
        self.path.touch()  # an empty file, not just a missing one

    def new_store(self) -> Store:
        return SqliteStore(str(self.path))

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def schema(self) -> dict[str, list[str]]:
        tables = self._query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return {
            name: [row[1] for row in self._query(f"PRAGMA table_info({name})")]
            for (name,) in tables
        }

    def schema_versions(self) -> list[int]:
        return [row[0] for row in self._query("SELECT version FROM schema_version ORDER BY rowid")]

    def commits(self, store: Store) -> int | None:
        assert isinstance(store, SqliteStore)
        return store.commits


class PostgresBackend(Backend):
    """A fresh, empty PostgreSQL database per test: the store migrates it on open."""

    name = "postgres"

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def new_store(self) -> Store:
        return PostgresStore(self.uri, writers=2, readers=2)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.uri) as conn:
            return conn.execute(sql, params).fetchall()

    def schema(self) -> dict[str, list[str]]:
        rows = self._query(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        )
        tables: dict[str, list[str]] = {}
        for table, column in rows:
            tables.setdefault(table, []).append(column)
        return tables

    def schema_versions(self) -> list[int]:
        return [
            row[0] for row in self._query("SELECT version FROM schema_version ORDER BY version")
        ]

    def commits(self, store: Store) -> int | None:
        assert isinstance(store, PostgresStore)
        return store.commits


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return SqliteBackend(tmp_path)
    if request.param == "postgres":
        return PostgresBackend(request.getfixturevalue("pg_empty_uri"))
    raise AssertionError(f"unknown backend {request.param!r}")


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = backend.new_store()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


# ---- record factories --------------------------------------------------------------


class Make:
    """Small factories for records, with sortable ids and sensible defaults.

    Event internal ids sort in creation order, as the ULIDs the server uses do.
    """

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def _next(self) -> int:
        return next(self._n)

    def app(self, name: str = "shop", *, checksum: str = "c1", at: int = T0) -> AppRecord:
        return AppRecord(
            id=f"app-{self._next():06d}",
            name=name,
            url=f"http://127.0.0.1:9000/{name}",
            sdk="py:v0.5",
            framework="starlette",
            checksum=checksum,
            created_at=at,
            updated_at=at,
        )

    def function(self, app: AppRecord, fn: str, **config: Any) -> FunctionRecord:
        slug = f"{app.name}-{fn}"
        return FunctionRecord(
            id=f"fn-{self._next():06d}",
            app_id=app.id,
            slug=slug,
            name=fn,
            config={"id": slug, "name": fn, **config},
            url=f"{app.url}?fnId={slug}&stepId=step",
            created_at=app.created_at,
        )

    def event(
        self,
        name: str = "shop/order.placed",
        *,
        at: int = T0,
        id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventRecord:
        internal_id = f"evt-{self._next():08d}"
        return EventRecord(
            internal_id=internal_id,
            id=id or internal_id,
            name=name,
            data=data if data is not None else {"n": internal_id},
            user={"email": "a@example.com"},
            ts=at,
            v=None,
            received_at=at,
        )

    def run(
        self,
        fn: FunctionRecord,
        *events: EventRecord,
        at: int | None = None,
        key: str | None = None,
        cron: str | None = None,
    ) -> NewRun:
        assert events, "a run needs its triggering event"
        return NewRun(
            id=f"run-{self._next():08d}",
            function_id=fn.id,
            function_slug=fn.slug,
            event_ids=tuple(e.internal_id for e in events),
            idempotency_key=key if key is not None else events[0].id,
            created_at=at if at is not None else events[0].received_at,
            cron=cron,
        )


@pytest.fixture
def make() -> Make:
    return Make()


# ---- common setups -------------------------------------------------------------------


class World:
    """A synced app with two functions, on one store: the starting point of most tests."""

    def __init__(self, store: Store, make: Make) -> None:
        self.store = store
        self.make = make
        self.app = make.app()
        self.fn = make.function(self.app, "fulfil")
        self.other_fn = make.function(self.app, "notify")

    async def sync(self) -> World:
        await self.store.sync_app(self.app, [self.fn, self.other_fn], [])
        return self

    async def start_run(
        self, fn: FunctionRecord | None = None, *, at: int = T0, name: str = "shop/order.placed"
    ) -> NewRun:
        """Ingest one event that starts one run of ``fn``; return the run."""
        event = self.make.event(name, at=at)
        run = self.make.run(fn or self.fn, event)
        created = await self.store.ingest(Ingest(events=[event], runs=[run]))
        assert created == [run.id]
        return run

    async def leased(self, run: NewRun, *, now: int = T0, lease_ms: int = MINUTE) -> Job:
        """Lease the one job due for ``run`` at ``now``."""
        jobs = [
            j for j in await self.store.lease_due_jobs(now, 1000, lease_ms) if j.run_id == run.id
        ]
        assert len(jobs) == 1, jobs
        return jobs[0]

    async def running(self, *, at: int = T0, lease_ms: int = MINUTE) -> tuple[NewRun, Job]:
        """A new run with its first job leased."""
        run = await self.start_run(at=at)
        return run, await self.leased(run, now=at, lease_ms=lease_ms)

    @staticmethod
    def done(job: Job, **changes: Any) -> Transition:
        """A transition for ``job`` (by default it only deletes the job)."""
        return Transition(job_id=job.id, lease=job.lease, run_id=job.run_id, **changes)

    async def drain(self, now: int = FAR) -> list[Job]:
        """Every job due at ``now`` (leasing them: call it last)."""
        return await self.store.lease_due_jobs(now, 100_000, MINUTE)


@pytest.fixture
async def world(store: Store, make: Make) -> World:
    return await World(store, make).sync()
