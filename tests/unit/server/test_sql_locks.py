"""Every flow-control decision in ``store/sql/`` locks its key before it reads its state.

On SQLite ``lock`` does nothing (one writer serialises everything), so the contract
tests there cannot see a missing lock; a backend with many writers depends on it. These
tests run the shared persistence code on a real SQLite database through a connection
that records the order of locks and statements.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stepwise.server.store.records import (
    Batch,
    Debounce,
    EventRecord,
    Ingest,
    NewRun,
    RateLimit,
    Settled,
    Throttle,
    Transition,
)
from stepwise.server.store.sql import ingest, leasing, transitions
from stepwise.server.store.sql.conn import Cursor
from stepwise.server.store.sqlite.connection import SqliteConn, connect
from stepwise.server.store.sqlite.store import SqliteStore

T0 = 1_800_000_000_000


class Recording:
    """A ``Conn`` over a real SQLite connection that keeps what happened, in order."""

    def __init__(self, conn: SqliteConn) -> None:
        self.conn = conn
        self.log: list[str] = []

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        self.log.append(sql)
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> Any:
        self.log.append(sql)
        return self.conn.executemany(sql, seq)

    def lock(self, key: str) -> None:
        self.log.append(f"LOCK {key}")

    def locked_before(self, key: str, sql_fragment: str) -> bool:
        """Whether ``key`` was locked before the first statement containing the fragment."""
        lock_at = self.log.index(f"LOCK {key}")
        read_at = next(i for i, sql in enumerate(self.log) if sql_fragment in sql)
        return lock_at < read_at


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Recording]:
    raw = connect(str(tmp_path / "stepwise.db"), "NORMAL")
    SqliteStore(str(tmp_path / "stepwise.db"))._migrate(raw)
    try:
        yield Recording(raw)
    finally:
        raw.close()


def new_run(n: int, **flow: Any) -> tuple[EventRecord, NewRun]:
    event = EventRecord(f"evt-{n}", f"evt-{n}", "shop/order", {}, {}, T0, None, T0)
    run = NewRun(f"run-{n}", "fn-1", "shop-fulfil", (event.internal_id,), event.id, T0)
    return event, replace(run, **flow)


def ingest_one(conn: Recording, n: int = 1, **flow: Any) -> NewRun:
    event, run = new_run(n, **flow)
    ingest.apply_ingest(conn, Ingest(events=[event], runs=[run]))
    return run


def test_an_idempotency_claim_locks_its_key_before_reading_it(conn: Recording) -> None:
    ingest_one(conn)
    assert conn.locked_before("idempotency:fn-1:evt-1", "FROM idempotency")


def test_a_singleton_locks_its_key_before_reading_active_runs(conn: Recording) -> None:
    ingest_one(conn, singleton_key="user-1")
    assert conn.locked_before("singleton:fn-1:user-1", "singleton_key = ?")


def test_a_rate_limit_locks_its_key_before_reading_its_tat(conn: Recording) -> None:
    ingest_one(conn, rate_limit=RateLimit("r", 1, 1_000))
    assert conn.locked_before("rate:r", "FROM rate_limits")


def test_a_debounce_locks_its_key_before_reading_what_it_holds(conn: Recording) -> None:
    ingest_one(conn, debounce=Debounce("d", 1_000))
    assert conn.locked_before("debounce:d", "FROM debounces")
    conn.log.clear()
    ingest.clear_debounce(conn, "d", "evt-1")
    assert conn.locked_before("debounce:d", "FROM debounces")


def test_a_batch_locks_its_key_before_reading_the_batch(conn: Recording) -> None:
    ingest_one(conn, batch=Batch("b", 5, 1_000))
    assert conn.locked_before("batch:b", "FROM batches")
    conn.log.clear()
    ingest.flush_batch(conn, "b", "run-1", T0 + 1_000)
    assert conn.locked_before("batch:b", "FROM batches")


def test_a_lease_locks_each_limit_before_counting_its_slots(conn: Recording) -> None:
    ingest_one(
        conn,
        concurrency=(("acct:1", 1),),
        run_concurrency=(("fn", 1),),
        throttle=Throttle("t", 1, 1_000),
    )
    [job] = leasing.lease(conn, T0, 10, 60_000)
    assert conn.locked_before("slots:acct:1", "FROM concurrency_slots")
    assert conn.locked_before("run_slots:fn", "FROM run_slots")
    assert conn.locked_before("rate:t", "FROM rate_limits")
    assert job.run_id == "run-1"


def test_a_transition_locks_its_run_before_closing_steps(conn: Recording) -> None:
    ingest_one(conn)
    [job] = leasing.lease(conn, T0, 10, 60_000)
    conn.log.clear()
    transitions.apply_transition(
        conn,
        Transition(job_id=job.id, lease=job.lease, run_id=job.run_id, settled=[Settled("s1", 1)]),
    )
    assert conn.locked_before("run:run-1", "open_steps")
