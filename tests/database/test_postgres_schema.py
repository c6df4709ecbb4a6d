"""PostgreSQL migrations: they apply, they are idempotent, concurrent runners apply them
once, and they give the same tables, columns and indexes as SQLite's."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stepwise.server.store.postgres.database import migrate_uri, migrations
from stepwise.server.store.sqlite.store import SqliteStore

# SQLite declared type -> the PostgreSQL types it may become.
TYPES = {"INTEGER": {"integer", "bigint"}, "TEXT": {"text"}, "BLOB": {"bytea"}}


def _pg(uri: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri) as conn:
        return conn.execute(query, params).fetchall()


def pg_columns(uri: str) -> dict[str, list[tuple[str, str, bool]]]:
    """Table -> [(column, type, not null)] in declaration order."""
    tables: dict[str, list[tuple[str, str, bool]]] = {}
    for table, column, type_, nullable in _pg(
        uri,
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    ):
        tables.setdefault(table, []).append((column, type_, nullable == "NO"))
    return tables


def pg_indexes(uri: str) -> set[str]:
    """Indexes created by name (not those behind primary keys and UNIQUE constraints)."""
    rows = _pg(
        uri,
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
    )
    return {name for (name,) in rows}


def sqlite_schema(path: Path) -> tuple[dict[str, list[tuple[str, str, bool]]], set[str]]:
    conn = sqlite3.connect(path)
    try:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        columns = {
            name: [
                # A primary key column is NOT NULL on PostgreSQL whatever it declares.
                (row[1], row[2], bool(row[3] or row[5]))
                for row in conn.execute(f"PRAGMA table_info({name})")
            ]
            for name in names
        }
        indexes = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
        return columns, indexes
    finally:
        conn.close()


async def test_both_backends_expose_the_same_tables_columns_and_indexes(
    pg_uri: str, tmp_path: Path
) -> None:
    store = SqliteStore(str(tmp_path / "stepwise.db"))
    await store.open()
    await store.close()
    lite_columns, lite_indexes = sqlite_schema(tmp_path / "stepwise.db")
    pg = pg_columns(pg_uri)

    assert {t: [c for c, _, _ in cols] for t, cols in pg.items()} == {
        t: [c for c, _, _ in cols] for t, cols in lite_columns.items()
    }
    for table, columns in lite_columns.items():
        for (name, lite_type, lite_not_null), (_, pg_type, pg_not_null) in zip(
            columns, pg[table], strict=True
        ):
            assert pg_type in TYPES[lite_type], (table, name, lite_type, pg_type)
            assert pg_not_null == lite_not_null, (table, name)
    assert pg_indexes(pg_uri) == lite_indexes


def test_migrating_an_empty_database_applies_every_version_once(pg_empty_uri: str) -> None:
    newest = [version for version, _ in migrations()]
    assert newest == [9, 10, 11, 12, 13, 14, 15, 16, 17]

    assert migrate_uri(pg_empty_uri) == newest
    assert migrate_uri(pg_empty_uri) == []

    versions = _pg(pg_empty_uri, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(9,), (10,), (11,), (12,), (13,), (14,), (15,), (16,), (17,)]
    assert "runs" in pg_columns(pg_empty_uri)


def test_nodes_starting_at_once_migrate_once(pg_empty_uri: str) -> None:
    runners = 6
    start = threading.Barrier(runners)
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def node() -> None:
        start.wait()
        try:
            applied.append(migrate_uri(pg_empty_uri))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(runners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(applied) == [[]] * (runners - 1) + [[9, 10, 11, 12, 13, 14, 15, 16, 17]]
    assert _pg(pg_empty_uri, "SELECT version FROM schema_version ORDER BY version") == [
        (9,),
        (10,),
        (11,),
        (12,),
        (13,),
        (14,),
        (15,),
        (16,),
        (17,),
    ]


def test_each_test_gets_a_migrated_database_of_its_own(pg_uri: str) -> None:
    # The fixture's database already holds the schema; migrating it again is a no-op.
    assert migrate_uri(pg_uri) == []
    _pg(pg_uri, "INSERT INTO rate_limits (key, tat) VALUES ('k', 1) RETURNING key")
    assert _pg(pg_uri, "SELECT key, tat FROM rate_limits") == [("k", 1)]


def test_a_lower_numbered_migration_added_later_is_applied(
    pg_empty_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Branches number migrations apart: one merged after a higher number ran still runs."""
    from stepwise.server.store.postgres import database

    shipped = migrations()
    late = shipped[-2]  # as if its branch landed after the newest one had been applied
    monkeypatch.setattr(database, "migrations", lambda: [m for m in shipped if m != late])
    before = migrate_uri(pg_empty_uri)
    assert late[0] not in before

    monkeypatch.setattr(database, "migrations", lambda: shipped)
    assert migrate_uri(pg_empty_uri) == [late[0]]
    assert migrate_uri(pg_empty_uri) == []
    versions = _pg(pg_empty_uri, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(v,) for v, _ in shipped]


async def test_sqlite_applies_a_lower_numbered_migration_added_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwise.server.store.sqlite import store as sqlite_store

    path = tmp_path / "stepwise.db"
    shipped = sqlite_store._migrations()
    late = shipped[-2]
    monkeypatch.setattr(sqlite_store, "_migrations", lambda: [m for m in shipped if m != late])
    first = SqliteStore(str(path))
    await first.open()
    await first.close()
    monkeypatch.setattr(sqlite_store, "_migrations", lambda: shipped)
    again = SqliteStore(str(path))
    await again.open()
    await again.close()

    conn = sqlite3.connect(path)
    try:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY rowid")]
    finally:
        conn.close()
    # Applied in the order the database saw them: the late one last.
    newest = [v for v, _ in shipped]
    assert versions == [v for v in newest if v != late[0]] + [late[0]]
