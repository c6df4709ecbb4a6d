"""Fixtures every kind of test may use: a fresh PostgreSQL database per test.

``pg_uri`` is a database migrated to the newest schema (a clone of a template built once
per test process); ``pg_empty_uri`` one with no tables at all. Both are dropped after the
test. If PostgreSQL is not reachable, tests that ask for one fail with how to start it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.postgres import PostgresUnavailable, TestPostgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestPostgres]:
    try:
        server = TestPostgres()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    server.drop_stale()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_uri(postgres: TestPostgres) -> Iterator[str]:
    name = postgres.create()
    try:
        yield postgres.uri(name)
    finally:
        postgres.drop(name)


@pytest.fixture
def pg_empty_uri(postgres: TestPostgres) -> Iterator[str]:
    name = postgres.create(empty=True)
    try:
        yield postgres.uri(name)
    finally:
        postgres.drop(name)
