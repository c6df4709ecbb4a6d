"""Real processes for integration tests: a Stepwise server and app servers, on free ports.

Nothing here is mocked: the server is ``python -m stepwise dev`` on a real SQLite file or
a real PostgreSQL database, apps are real HTTP servers, and tests talk to both over HTTP.

Which backend a ``ServerProcess`` uses is set for a whole scope with ``use_backend``
(``tests/integration/conftest.py`` runs every integration test once per backend). On
PostgreSQL each server directory gets its own fresh database, so a server restarted, or a
second one started, on the same directory uses the same database, as on SQLite's file.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg

from stepwise.protocol import hash_signing_key
from stepwise.server.store.postgres.database import to_pyformat
from stepwise.server.store.postgres.store import PostgresStore
from stepwise.server.store.sql.store import SqlStore
from stepwise.server.store.sqlite.store import SqliteStore
from stepwise.testing.server import (
    TERMINAL,
    DevServer,
    Process,
    child_env,
    free_port,
    wait_until,
)
from support.postgres import TestPostgres

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "integration" / "apps"

__all__ = ["TERMINAL", "Process", "free_port", "wait_until"]  # re-exported for the tests


class _Backend:
    """The backend new servers use, and the PostgreSQL databases made for them."""

    def __init__(self) -> None:
        self.name = "sqlite"
        self.postgres: TestPostgres | None = None
        self.databases: dict[Path, str] = {}  # server directory -> database name
        self.servers: weakref.WeakSet[ServerProcess] = weakref.WeakSet()

    def database_uri(self, tmp: Path) -> str:
        assert self.postgres is not None, "use_backend('postgres', ...) sets the server up"
        name = self.databases.get(tmp)
        if name is None:
            name = self.databases[tmp] = self.postgres.create()
        return self.postgres.uri(name)

    def drop_databases(self, keep: set[Path]) -> None:
        assert self.postgres is not None or not self.databases
        for tmp in set(self.databases) - keep:
            name = self.databases.pop(tmp)
            if self.postgres is not None:
                self.postgres.drop(name)


_BACKEND = _Backend()


@contextlib.contextmanager
def use_backend(name: str, postgres: TestPostgres | None = None) -> Iterator[None]:
    """Servers created inside run on ``name`` ("sqlite" or "postgres", which needs
    ``postgres``); the databases made for them are dropped on the way out."""
    assert name in ("sqlite", "postgres") and (name == "sqlite" or postgres is not None)
    previous = (_BACKEND.name, _BACKEND.postgres, _BACKEND.databases)
    _BACKEND.name, _BACKEND.postgres, _BACKEND.databases = name, postgres, {}
    try:
        yield
    finally:
        _BACKEND.drop_databases(keep=set())
        _BACKEND.name, _BACKEND.postgres, _BACKEND.databases = previous


@contextlib.contextmanager
def own_databases() -> Iterator[None]:
    """Drop on the way out the PostgreSQL databases of the servers created inside (a
    test's), keeping those made before (a module fixture's)."""
    before = set(_BACKEND.databases)
    try:
        yield
    finally:
        _BACKEND.drop_databases(keep=before)


def current_backend() -> str:
    return _BACKEND.name


def running_servers() -> list[ServerProcess]:
    return [s for s in _BACKEND.servers if s.proc is not None and s.proc.poll() is None]


class ServerProcess(DevServer):
    def __init__(
        self,
        tmp: Path,
        *,
        sdk_urls: list[str],
        port: int | None = None,
        extra_args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
        postgres_uri: str | None = None,
    ) -> None:
        """A server on ``postgres_uri`` if given, else on the current backend (see
        ``use_backend``): the SQLite file ``tmp/stepwise.db`` or ``tmp``'s database."""
        if postgres_uri is None and _BACKEND.name == "postgres":
            postgres_uri = _BACKEND.database_uri(tmp)
        self.backend = "sqlite" if postgres_uri is None else "postgres"
        super().__init__(
            tmp,
            port=port,
            sdk_urls=sdk_urls,
            extra_args=extra_args or (),
            extra_env=extra_env,
            postgres_uri=postgres_uri,
            cwd=REPO,
        )
        _BACKEND.servers.add(self)

    @property
    def db(self) -> Path:
        """The SQLite file (a SQLite server only: see ``query`` for either backend)."""
        assert self.backend == "sqlite", "a PostgreSQL server has no file: use query()"
        return self.sqlite_path

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows read straight from the server's database, on either backend.

        ``sql`` uses ``?`` placeholders and syntax both backends accept (quote
        ``events."user"``); blobs come back as ``bytes`` on both.
        """
        if self.postgres_uri is not None:
            with psycopg.connect(self.postgres_uri, autocommit=True) as pg:
                rows: list[tuple[Any, ...]] = pg.execute(to_pyformat(sql), params).fetchall()
        else:
            conn = sqlite3.connect(self.sqlite_path)
            try:
                rows = conn.execute(sql, params).fetchall()
            finally:
                conn.close()
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]

    def tables(self) -> list[str]:
        """The names of the tables in the server's database, on either backend."""
        if self.postgres_uri is None:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        else:
            sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        return [str(row[0]) for row in self.query(sql)]

    def second_store(self) -> SqlStore:
        """Another, non-exclusive store on the server's database, not yet opened: what
        another node would use (``await store.open()`` ... ``await store.close()``)."""
        if self.postgres_uri is not None:
            return PostgresStore(self.postgres_uri, writers=1, readers=1)
        return SqliteStore(str(self.sqlite_path), exclusive=False)

    def production(self, *, signing_key: str, event_key: str) -> None:
        """Run as ``stepwise start``: keys required, API calls need the signing key."""
        self.args[self.args.index("dev")] = "start"
        self.args.remove("--no-discovery")
        self.args += ["--signing-key", signing_key, "--event-key", event_key]
        self.event_key = event_key
        self.http.headers["authorization"] = f"Bearer {hash_signing_key(signing_key)}"


class AppProcess(Process):
    """An app server: ``tests/integration/apps/<module>.py`` listening on ``PORT``."""

    def __init__(
        self, tmp: Path, module: str, *, server_url: str, extra_env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.ledger = tmp / f"{module}-{self.port}.ledger"
        env = child_env(
            {
                "PORT": str(self.port),
                "STEPWISE_TEST_SERVER": server_url,
                "STEPWISE_TEST_LEDGER": str(self.ledger),
                **(extra_env or {}),
            }
        )
        # A module ending in .mjs is a Node.js app of the JS interop peer.
        command = [sys.executable, str(APPS / f"{module}.py")]
        if module.endswith(".mjs"):
            command = ["node", str(REPO / "tests" / "interop" / "js" / module)]
        super().__init__(command, env=env, log_path=tmp / f"{module}-{self.port}.log", cwd=REPO)
        self.url = f"http://127.0.0.1:{self.port}/api/inngest"

    def start_and_wait(self, timeout: float = 20) -> None:
        self.start()
        # Any HTTP answer means the app is up: in production mode an unsigned GET gets a 401.
        wait_until(
            lambda: httpx.get(self.url, timeout=2).status_code in (200, 401),
            timeout=timeout,
            what=f"app {self.args[-1]}",
        )

    def executions(self) -> list[dict[str, Any]]:
        """Every step execution the app recorded: one JSON object a line."""
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines() if line.strip()]

    def ledger_of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        """The ledger lines of one kind whose fields equal ``match``, in the order written."""
        return [
            e
            for e in self.executions()
            if e.get("kind") == kind and all(e.get(k) == v for k, v in match.items())
        ]


def server_and_app(tmp: Path, module: str, **app_env: str) -> tuple[ServerProcess, AppProcess]:
    """A server without ``-u`` and an app that knows the server's URL, neither started:
    for tests that give the server the app's URL themselves (``POST /v1/apps``)."""
    port = free_port()
    app = AppProcess(tmp, module, server_url=f"http://127.0.0.1:{port}", extra_env=app_env)
    return ServerProcess(tmp, port=port, sdk_urls=[]), app


class Stack:
    """A server and one app that know each other's URLs, started together, stopped together."""

    def __init__(
        self,
        tmp: Path,
        module: str,
        *,
        server_args: list[str] | None = None,
        app_env: dict[str, str] | None = None,
        server_env: dict[str, str] | None = None,
        functions: int = 1,
    ) -> None:
        port = free_port()
        self.app = AppProcess(tmp, module, server_url=f"http://127.0.0.1:{port}", extra_env=app_env)
        self.server = ServerProcess(
            tmp, port=port, sdk_urls=[self.app.url], extra_args=server_args, extra_env=server_env
        )
        self.functions = functions

    def __enter__(self) -> Stack:
        try:
            self.app.start_and_wait()
            self.server.start_and_wait()
            self.server.wait_for_functions(self.functions)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.app.stop()
        self.server.close()

    def steps_of(self, run_id: str) -> list[tuple[str, int]]:
        return [(e["step"], e["attempt"]) for e in self.app.executions() if e["run_id"] == run_id]

    def logs(self) -> str:
        return f"--- server ---\n{self.server.log()}\n--- app ---\n{self.app.log()}"
