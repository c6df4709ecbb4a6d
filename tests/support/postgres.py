"""The machine's PostgreSQL for tests: one migrated template per test process, and a fresh
database per test cloned from it (``CREATE DATABASE ... TEMPLATE``, a file copy: fast).

Database names carry the test process's pid, so several test sessions (and pytest-xdist
workers) share one server without meeting; databases left behind by a killed session are
dropped by the next one. Set ``STEPWISE_TEST_POSTGRES`` to use another server.
"""

from __future__ import annotations

import itertools
import os
import re

import psycopg
from psycopg import sql

from stepwise.server.store.postgres.database import migrate_uri

ADMIN_URI = os.environ.get(
    "STEPWISE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PREFIX = "stepwise_test_"
_NAME = re.compile(rf"^{PREFIX}(\d+)_")


class PostgresUnavailable(Exception):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TestPostgres:
    """Creates and drops this test process's databases on one PostgreSQL server."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, admin_uri: str = ADMIN_URI) -> None:
        self.admin_uri = admin_uri
        self._pid = os.getpid()
        self._counter = itertools.count(1)
        self.template: str | None = None
        try:
            self._admin = psycopg.connect(admin_uri, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise PostgresUnavailable(
                f"PostgreSQL is not reachable at {admin_uri} ({exc}). The tests need it: "
                "start it with `pg_ctlcluster $(ls /etc/postgresql) main start` (`.ci/run` "
                "does), or point STEPWISE_TEST_POSTGRES at another server."
            ) from exc

    def uri(self, dbname: str) -> str:
        """The admin URI with its database swapped for ``dbname``."""
        params = psycopg.conninfo.conninfo_to_dict(self.admin_uri)
        params["dbname"] = dbname
        return psycopg.conninfo.make_conninfo(**params)

    def _name(self, kind: str) -> str:
        return f"{PREFIX}{self._pid}_{kind}{next(self._counter)}"

    def drop_stale(self) -> None:
        """Drop the databases of test processes that are gone (killed mid-run)."""
        rows = self._admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",)
        ).fetchall()
        for (name,) in rows:
            match = _NAME.match(name)
            if match and not _alive(int(match.group(1))):
                self.drop(name)

    def create_template(self) -> str:
        """A database migrated to the newest schema, to clone test databases from."""
        name = self._name("template")
        self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        migrate_uri(self.uri(name))
        self.template = name
        return name

    def create(self, *, empty: bool = False) -> str:
        """A fresh database: a clone of the template, or (``empty``) one with no tables."""
        name = self._name("empty" if empty else "db")
        template = "template0" if empty else (self.template or self.create_template())
        self._admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return name

    def drop(self, name: str) -> None:
        # FORCE: a server process a test killed may still hold a connection.
        self._admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def close(self) -> None:
        if self.template is not None:
            self.drop(self.template)
            self.template = None
        self._admin.close()
