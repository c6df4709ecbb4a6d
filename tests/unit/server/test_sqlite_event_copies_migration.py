"""Upgrading a SQLite database from before event copies (schema 7) keeps every event it had."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from stepwise.server.store.records import EventRecord, Ingest
from stepwise.server.store.sqlite.store import SqliteStore, _migrations

T0 = 1_800_000_000_000


def version_7_database(path: Path, events: list[EventRecord]) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, sql in _migrations():
            if version > 7:
                break
            conn.executescript(sql)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.executemany(
            "INSERT INTO events (internal_id, id, name, data, user, ts, v, received_at)"
            " VALUES (?, ?, ?, '{}', '{}', ?, NULL, ?)",
            [(e.internal_id, e.id, e.name, e.ts, e.received_at) for e in events],
        )
        conn.commit()
    finally:
        conn.close()


def event(internal_id: str, name: str, at: int) -> EventRecord:
    return EventRecord(
        internal_id=internal_id,
        id=internal_id,
        name=name,
        data={},
        user={},
        ts=at,
        v=None,
        received_at=at,
    )


async def test_old_events_become_first_copies_and_take_new_copies(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = [event("evt-1", "a", T0), event("evt-2", "b", T0 + 1)]
    version_7_database(path, old)

    store = SqliteStore(str(path))
    await store.open()
    try:
        assert await store.get_event("evt-1") == old[0]
        page = await store.list_events(
            limit=10, cursor=None, name=None, received_after=None, received_before=None
        )
        assert page == old[::-1]

        resent = replace(old[0], received_at=T0 + 5)
        await store.ingest(Ingest(events=[resent]))
        page = await store.list_events(
            limit=10, cursor=None, name="a", received_after=None, received_before=None
        )
        assert page == [replace(resent, copy=1), old[0]]
    finally:
        await store.close()
