"""The PostgreSQL group-commit writer, on a real database: groups, savepoints, retries,
commit-before-answer, NOTIFY, and what callers see when connections die."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from stepwise.server.store.errors import DatabaseUnavailable
from stepwise.server.store.postgres.database import Backoff, PgConn, listen
from stepwise.server.store.postgres.writer import PgWriter
from support.harness import wait_until

FAST = Backoff(initial=0.01, maximum=0.1)
WAIT = 20.0  # seconds a test thread waits for another before giving up


@pytest.fixture
def make_writer(pg_uri: str) -> Iterator[Callable[..., PgWriter]]:
    writers: list[PgWriter] = []

    def make(**options: Any) -> PgWriter:
        writer = PgWriter(pg_uri, backoff=FAST, **options)
        writer.start()
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.stop()


def sql(uri: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def insert(key: str, tat: int = 0) -> Callable[[PgConn], str]:
    """An operation writing one row; it returns its top-level transaction's id."""

    def op(conn: PgConn) -> str:
        conn.execute("INSERT INTO rate_limits (key, tat) VALUES (?, ?)", (key, tat))
        row = conn.execute("SELECT pg_current_xact_id()::text AS xid").fetchone()
        assert row is not None
        return str(row["xid"])

    return op


def backend_pid(conn: PgConn) -> int:
    row = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
    assert row is not None
    return int(row["pid"])


class Gate:
    """An operation that holds its writer thread until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, conn: PgConn) -> str:
        self.entered.set()
        assert self.released.wait(WAIT)
        return "gate"

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, WAIT)


def keys(uri: str) -> list[str]:
    return [k for (k,) in sql(uri, "SELECT key FROM rate_limits ORDER BY key")]


async def queue_behind(
    writer: PgWriter, gate: Gate, ops: list[Callable[[PgConn], Any]]
) -> list[asyncio.Future[Any]]:
    """Submit ``ops`` while ``gate`` holds the (single) writer thread: they queue up."""
    await gate.wait_entered()
    futures = [asyncio.ensure_future(writer.run(op)) for op in ops]
    await asyncio.sleep(0)  # each task runs up to its queue.put
    return futures


async def test_queued_operations_share_one_transaction(
    make_writer: Callable[..., PgWriter], pg_uri: str
) -> None:
    writer = make_writer(threads=1)
    gate = Gate()
    first = asyncio.ensure_future(writer.run(gate))
    rest = await queue_behind(writer, gate, [insert(f"k{n:02d}") for n in range(50)])
    commits = writer.commits

    gate.released.set()
    xids = await asyncio.gather(*rest)

    assert await first == "gate"
    assert len(set(xids)) == 1  # fifty operations, one transaction
    assert writer.commits == commits + 2  # the gate's group, then everyone else's
    assert keys(pg_uri) == [f"k{n:02d}" for n in range(50)]


async def test_a_failing_operation_rolls_back_alone(
    make_writer: Callable[..., PgWriter], pg_uri: str
) -> None:
    writer = make_writer(threads=1)

    def duplicate(conn: PgConn) -> None:
        insert("partial-sql")(conn)
        insert("a")(conn)  # already written by the first operation: unique violation

    def raises(conn: PgConn) -> None:
        insert("partial-python")(conn)
        raise ValueError("the operation itself failed")

    gate = Gate()
    first = asyncio.ensure_future(writer.run(gate))
    a, dup, bad, b = await queue_behind(writer, gate, [insert("a"), duplicate, raises, insert("b")])
    gate.released.set()

    assert await first == "gate"
    xid_a, xid_b = await a, await b
    assert xid_a == xid_b
    with pytest.raises(psycopg.errors.UniqueViolation):
        await dup
    with pytest.raises(ValueError, match="the operation itself failed"):
        await bad
    assert keys(pg_uri) == ["a", "b"]


async def test_an_unread_failing_statement_is_blamed_on_its_own_operation(
    make_writer: Callable[..., PgWriter], pg_uri: str
) -> None:
    """Writes are pipelined: a statement whose result nobody reads fails at the end of its
    operation, never in the next one; a Python error after it rolls back just as well."""
    writer = make_writer(threads=1)
    sql(pg_uri, "INSERT INTO rate_limits (key, tat) VALUES ('taken', 0)")

    def unread(key: str, then: Exception | None = None) -> Callable[[PgConn], str]:
        def op(conn: PgConn) -> str:
            conn.execute("INSERT INTO rate_limits (key, tat) VALUES (?, 0)", (f"{key}-1",))
            conn.execute("INSERT INTO rate_limits (key, tat) VALUES (?, 0)", (key,))
            conn.execute("INSERT INTO rate_limits (key, tat) VALUES (?, 0)", (f"{key}-2",))
            if then is not None:
                raise then
            return key

        return op

    gate = Gate()
    first = asyncio.ensure_future(writer.run(gate))
    ops = [unread("taken"), unread("c"), unread("taken", ValueError("late")), unread("d")]
    dup, c, dup_then_raise, d = await queue_behind(writer, gate, ops)
    gate.released.set()

    assert await first == "gate"
    assert (await c, await d) == ("c", "d")
    with pytest.raises(psycopg.errors.UniqueViolation):
        await dup
    # The statement failed before the operation raised: either error is honest, but the
    # operation must fail and leave nothing behind.
    with pytest.raises((psycopg.errors.UniqueViolation, ValueError)):
        await dup_then_raise
    assert keys(pg_uri) == ["c", "c-1", "c-2", "d", "d-1", "d-2", "taken"]


async def test_no_caller_is_answered_before_its_commit(
    make_writer: Callable[..., PgWriter], pg_uri: str
) -> None:
    writer = make_writer(threads=1)
    first_gate, second_gate = Gate(), Gate()
    first = asyncio.ensure_future(writer.run(first_gate))
    written, held = await queue_behind(writer, first_gate, [insert("written"), second_gate])
    first_gate.released.set()
    assert await first == "gate"

    # ``written`` has run in the group ``second_gate`` now holds open: not committed yet.
    await second_gate.wait_entered()
    assert not written.done()
    assert keys(pg_uri) == []

    second_gate.released.set()
    await written
    assert await held == "gate"
    assert keys(pg_uri) == ["written"]


async def test_a_deadlocked_operation_is_tried_again(
    make_writer: Callable[..., PgWriter], pg_uri: str
) -> None:
    sql(pg_uri, "INSERT INTO rate_limits (key, tat) VALUES ('x', 0), ('y', 0)")
    writer = make_writer(threads=2, max_batch=1)
    holds = {"x": threading.Event(), "y": threading.Event()}
    calls: list[str] = []

    def cross(first: str, second: str) -> Callable[[PgConn], str]:
        def op(conn: PgConn) -> str:
            calls.append(first)
            # Reading the count waits for the UPDATE to have run (writes are pipelined),
            # so the row lock is held before the other operation is let go.
            assert (
                conn.execute(
                    "UPDATE rate_limits SET tat = tat + 1 WHERE key = ?", (first,)
                ).rowcount
                == 1
            )
            holds[first].set()
            assert holds[second].wait(WAIT)
            conn.execute("UPDATE rate_limits SET tat = tat + 1 WHERE key = ?", (second,))
            return first

        return op

    results = await asyncio.gather(writer.run(cross("x", "y")), writer.run(cross("y", "x")))

    assert results == ["x", "y"]
    # One of the two is the deadlock's victim. On a loaded machine its second attempt may
    # also wait out the lock timeout behind the winner's commit and be tried once more.
    assert 1 <= writer.retries <= 3
    assert len(calls) == 2 + writer.retries
    assert calls.count("x") == 1 or calls.count("y") == 1
    # Both committed exactly once: the victim's first attempt was rolled back.
    assert sql(pg_uri, "SELECT key, tat FROM rate_limits ORDER BY key") == [("x", 2), ("y", 2)]


async def test_notifications_are_sent_with_the_commit_and_only_then(
    make_writer: Callable[..., PgWriter], pg_uri: str
) -> None:
    writer = make_writer()
    wakeups = listen(pg_uri, ["jobs"], backoff=FAST)
    try:
        assert (await asyncio.wait_for(anext(wakeups), WAIT)).connected

        def fails(conn: PgConn) -> None:
            raise ValueError("no")

        await writer.run(insert("a"), notify=[("jobs", "after-a")])
        with pytest.raises(ValueError):
            await writer.run(fails, notify=[("jobs", "never")])
        await writer.run(insert("b"), notify=lambda xid: [("jobs", "after-b")])

        got = [await asyncio.wait_for(anext(wakeups), WAIT) for _ in range(2)]
        assert [(w.channel, w.payload) for w in got] == [("jobs", "after-a"), ("jobs", "after-b")]
    finally:
        await wakeups.aclose()


def _terminate(uri: str, pid: int) -> None:
    assert sql(uri, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]


async def test_a_killed_connection_is_replaced_and_nothing_is_lost(
    make_writer: Callable[..., PgWriter], pg_uri: str
) -> None:
    writer = make_writer(threads=1)
    before = await writer.run(backend_pid)
    await writer.run(insert("before"))
    _terminate(pg_uri, before)

    # The next group finds the connection dead before writing anything: it is run again
    # on a new connection, and its caller never knows.
    await writer.run(insert("after"))
    assert await writer.run(backend_pid) != before
    assert keys(pg_uri) == ["after", "before"]


async def test_while_the_database_refuses_connections_callers_get_unavailable(
    make_writer: Callable[..., PgWriter], pg_uri: str
) -> None:
    writer = make_writer(threads=2)
    await writer.run(insert("before"))
    dbname = psycopg.conninfo.conninfo_to_dict(pg_uri)["dbname"]
    admin = psycopg.conninfo.make_conninfo(pg_uri, dbname="postgres")

    sql(admin, f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
    try:
        sql(
            admin,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (dbname,),
        )
        with pytest.raises(DatabaseUnavailable) as caught:
            await writer.run(insert("during"))
        assert caught.value.in_doubt is False
    finally:
        sql(admin, f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')

    await asyncio.to_thread(
        wait_until, lambda: writer.available, timeout=WAIT, what="the writer reconnected"
    )
    await writer.run(insert("after"))
    assert keys(pg_uri) == ["after", "before"]


async def test_a_connection_killed_during_commit_leaves_the_caller_in_doubt(
    make_writer: Callable[..., PgWriter], pg_uri: str
) -> None:
    # A deferred trigger makes COMMIT itself slow, so the test can kill it mid-way.
    sql(
        pg_uri,
        """
        CREATE TABLE slow_commit (n INTEGER);
        CREATE FUNCTION sleep_at_commit() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON slow_commit
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sleep_at_commit();
        """,
    )
    writer = make_writer(threads=1)

    def slow(conn: PgConn) -> None:
        conn.execute("INSERT INTO slow_commit (n) VALUES (1)")

    pending = asyncio.ensure_future(writer.run(slow))

    async def committing() -> int:
        while True:
            rows = sql(
                pg_uri,
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'stepwise-write'"
                " AND datname = current_database() AND state = 'active' AND query = 'COMMIT'",
            )
            if rows:
                return int(rows[0][0])
            await asyncio.sleep(0.01)

    _terminate(pg_uri, await asyncio.wait_for(committing(), WAIT))
    with pytest.raises(DatabaseUnavailable) as caught:
        await pending
    assert caught.value.in_doubt is True

    await writer.run(insert("after"))  # and the writer carries on
    assert keys(pg_uri) == ["after"]


async def test_a_stopped_writer_refuses_work_and_starts_again(pg_uri: str) -> None:
    writer = PgWriter(pg_uri, threads=2, backoff=FAST)
    writer.start()
    await writer.run(insert("first"))
    writer.stop()
    with pytest.raises(RuntimeError, match="not running"):
        await writer.run(insert("refused"))

    writer.start()
    try:
        await writer.run(insert("again"))
    finally:
        writer.stop()
    assert keys(pg_uri) == ["again", "first"]


def test_a_writer_that_cannot_reach_the_database_does_not_start(pg_uri: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(pg_uri)
    writer = PgWriter(psycopg.conninfo.make_conninfo(pg_uri, dbname=params["dbname"] + "_none"))
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        writer.start()


async def test_key_locks_serialise_racing_writer_threads(
    make_writer: Callable[..., PgWriter], pg_uri: str
) -> None:
    # Forty callers race for the last free slot of one key, over four threads and their
    # groups: each checks and takes under the key's lock, so exactly one gets it.
    writer = make_writer(threads=4, max_batch=3)

    def take_last_slot(n: int) -> Callable[[PgConn], bool]:
        def op(conn: PgConn) -> bool:
            conn.lock("concurrency:fn-1")
            row = conn.execute(
                "SELECT count(*) AS n FROM run_slots WHERE ckey = ?", ("concurrency:fn-1",)
            ).fetchone()
            assert row is not None
            if row["n"] >= 1:
                return False
            conn.execute(
                "INSERT INTO run_slots (run_id, ckey) VALUES (?, ?)", (f"r{n}", "concurrency:fn-1")
            )
            return True

        return op

    won = await asyncio.gather(*(writer.run(take_last_slot(n)) for n in range(40)))

    assert won.count(True) == 1
    assert sql(pg_uri, "SELECT count(*) FROM run_slots") == [(1,)]
