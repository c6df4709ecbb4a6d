"""The PostgreSQL plumbing under the store: the Conn adapter, reads, LISTEN."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from stepwise.server.store.postgres.database import (
    Backoff,
    PgConn,
    ReadPool,
    Wakeup,
    connect,
    listen,
    to_pyformat,
)


def test_question_marks_become_placeholders_and_percent_signs_stay_literal() -> None:
    assert to_pyformat("SELECT a FROM t WHERE b = ? AND c = ?") == (
        "SELECT a FROM t WHERE b = %s AND c = %s"
    )
    assert to_pyformat("SELECT '50%' || ?, \"odd?col\" FROM t") == (
        "SELECT '50%%' || %s, \"odd?col\" FROM t"
    )
    assert to_pyformat("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', %s"
    assert to_pyformat("SELECT ? -- why? 100%\nFROM t WHERE a = ?") == (
        "SELECT %s -- why? 100%%\nFROM t WHERE a = %s"
    )


def test_the_adapter_runs_shared_sql_and_reads_rows_by_column_name(pg_uri: str) -> None:
    with connect(pg_uri) as raw:
        conn = PgConn(raw)
        conn.execute(
            "INSERT INTO open_steps (run_id, step_id, batch, race) VALUES (?, ?, ?, ?)",
            ("r1", "s1", True, False),
        )
        conn.executemany(
            "INSERT INTO rate_limits (key, tat) VALUES (?, ?)",
            [("a%", 1), ("b?", 2)],
        )
        row = conn.execute(
            "SELECT run_id, batch, race FROM open_steps WHERE step_id = ?", ("s1",)
        ).fetchone()
        assert row == {"run_id": "r1", "batch": 1, "race": 0}
        rows = conn.execute(
            "SELECT key, tat FROM rate_limits WHERE key LIKE '%' ORDER BY key"
        ).fetchall()
        assert [(r["key"], r["tat"]) for r in rows] == [("a%", 1), ("b?", 2)]
        cur = conn.execute("UPDATE rate_limits SET tat = tat + 1 WHERE tat < ?", (10,))
        assert cur.rowcount == 2


def test_blobs_and_epoch_milliseconds_round_trip(pg_uri: str) -> None:
    with connect(pg_uri) as raw:
        conn = PgConn(raw)
        conn.execute(
            'INSERT INTO events (internal_id, id, name, data, "user", ts, v, received_at, copy)'
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("e1", "e1", "a/b", b'{"n":1}', b"{}", 1_900_000_000_000, None, 1_900_000_000_001, 0),
        )
        row = conn.execute('SELECT data, "user", ts FROM events').fetchone()
        assert row == {"data": b'{"n":1}', "user": b"{}", "ts": 1_900_000_000_000}


def test_a_key_lock_is_held_until_the_transaction_ends(pg_uri: str) -> None:
    with connect(pg_uri) as first, connect(pg_uri) as second:
        second.execute("SET lock_timeout = 50")
        first.execute("BEGIN")
        PgConn(first).lock("concurrency:fn-1:acct-9")

        second.execute("BEGIN")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            PgConn(second).lock("concurrency:fn-1:acct-9")
        second.execute("ROLLBACK")

        second.execute("BEGIN")
        PgConn(second).lock("concurrency:fn-1:another-key")  # other keys are free
        second.execute("ROLLBACK")

        first.execute("COMMIT")
        second.execute("BEGIN")
        PgConn(second).lock("concurrency:fn-1:acct-9")
        second.execute("COMMIT")


def _terminate(uri: str, application_name: str) -> int:
    with psycopg.connect(uri, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (application_name,),
        ).fetchall()
    return len(rows)


async def test_reads_run_shared_functions_and_survive_a_killed_connection(pg_uri: str) -> None:
    def count(conn: PgConn) -> int:
        row = conn.execute("SELECT count(*) AS n FROM rate_limits WHERE tat >= ?", (0,)).fetchone()
        assert row is not None
        return int(row["n"])

    with psycopg.connect(pg_uri) as c:
        c.execute("INSERT INTO rate_limits (key, tat) VALUES ('a', 1), ('b', 2)")

    reads = ReadPool(pg_uri, size=2, name="stepwise-read-test")
    reads.open()
    try:
        assert await reads.run(count) == 2
        assert _terminate(pg_uri, "stepwise-read-test") >= 1
        assert await reads.run(count) == 2  # a fresh connection, transparently
        assert await asyncio.gather(*(reads.run(count) for _ in range(8))) == [2] * 8
    finally:
        reads.close()


async def _next(wakeups: AsyncIterator[Wakeup]) -> Wakeup:
    return await asyncio.wait_for(anext(wakeups), timeout=20)


async def test_listen_delivers_notifications_and_reconnects(pg_uri: str) -> None:
    wakeups = listen(pg_uri, ["jobs", "apps"], backoff=Backoff(initial=0.01, maximum=0.1))
    try:
        assert (await _next(wakeups)).connected
        with psycopg.connect(pg_uri, autocommit=True) as c:
            c.execute("SELECT pg_notify('jobs', 'due'), pg_notify('other', 'x')")
            c.execute("NOTIFY apps, 'synced'")
        assert await _next(wakeups) == Wakeup("jobs", "due")
        assert await _next(wakeups) == Wakeup("apps", "synced")

        assert _terminate(pg_uri, "stepwise-listen") == 1
        assert (await _next(wakeups)).connected
        with psycopg.connect(pg_uri, autocommit=True) as c:
            c.execute("SELECT pg_notify('jobs', 'after')")
        assert await _next(wakeups) == Wakeup("jobs", "after")
    finally:
        await wakeups.aclose()
