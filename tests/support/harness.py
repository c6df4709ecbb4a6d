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
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg

from stepwise.protocol import hash_signing_key
from stepwise.server.store.postgres.database import to_pyformat
from stepwise.server.store.postgres.store import PostgresStore
from stepwise.server.store.sql.store import SqlStore
from stepwise.server.store.sqlite.store import SqliteStore
from support.postgres import TestPostgres

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "integration" / "apps"
TERMINAL = {"Completed", "Failed", "Cancelled", "Skipped"}


_HANDED_OUT: set[int] = set()

# Each pytest-xdist worker hands out ports from its own block, below the kernel's ephemeral
# range (32768+, where bind(port 0) and outgoing connections take theirs): two workers
# asking the OS for "a free port" at once could both be given the same one.
_PORT_BLOCK = 1000
_PORT_BASE = 20000
_PORT_BLOCKS = 12


def _port_block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw3"; absent without xdist
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    start = _PORT_BASE + (index % _PORT_BLOCKS) * _PORT_BLOCK
    return range(start, start + _PORT_BLOCK)


_PORTS = _port_block()
# Start somewhere in the block by pid, so test sessions running side by side (another
# checkout's) rarely probe the same ports in the same order.
_next_port = os.getpid() % _PORT_BLOCK


def free_port() -> int:
    """A port free now, never handed out before by this process, in this worker's block.

    Nothing holds the port between this call and the server binding it, so it is chosen
    where no other worker of this session looks, and never twice.
    """
    global _next_port
    for _ in range(len(_PORTS)):
        port = _PORTS[_next_port % len(_PORTS)]
        _next_port += 1
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, by someone else
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port left in {_PORTS}")


def wait_until(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # the thing we wait for may not be up yet
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}"
        + (f" (last error: {last_error})" if last_error else "")
    )


class Process:
    def __init__(self, args: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
        log.close()

    def kill(self) -> None:
        """``kill -9``: no cleanup, no flush, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


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


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class ServerProcess(Process):
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
        self.port = port or free_port()
        if postgres_uri is None and _BACKEND.name == "postgres":
            postgres_uri = _BACKEND.database_uri(tmp)
        self.backend = "sqlite" if postgres_uri is None else "postgres"
        self.postgres_uri = postgres_uri
        self._sqlite_path = tmp / "stepwise.db"
        database = (
            ["--sqlite-path", str(self._sqlite_path)]
            if postgres_uri is None
            else ["--postgres-uri", postgres_uri]
        )
        args = [
            sys.executable,
            "-m",
            "stepwise",
            "dev",
            "--port",
            str(self.port),
            "--no-discovery",
            *database,
            "--poll-interval",
            "1",
        ]
        for url in sdk_urls:
            args += ["-u", url]
        args += extra_args or []
        super().__init__(args, env=_child_env(extra_env), log_path=tmp / f"server-{self.port}.log")
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.event_key = "test-key"
        _BACKEND.servers.add(self)

    @property
    def db(self) -> Path:
        """The SQLite file (a SQLite server only: see ``query`` for either backend)."""
        assert self.backend == "sqlite", "a PostgreSQL server has no file: use query()"
        return self._sqlite_path

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows read straight from the server's database, on either backend.

        ``sql`` uses ``?`` placeholders and syntax both backends accept (quote
        ``events."user"``); blobs come back as ``bytes`` on both.
        """
        if self.postgres_uri is not None:
            with psycopg.connect(self.postgres_uri, autocommit=True) as pg:
                rows: list[tuple[Any, ...]] = pg.execute(to_pyformat(sql), params).fetchall()
        else:
            conn = sqlite3.connect(self._sqlite_path)
            try:
                rows = conn.execute(sql, params).fetchall()
            finally:
                conn.close()
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]

    def second_store(self) -> SqlStore:
        """Another, non-exclusive store on the server's database, not yet opened: what
        another node would use (``await store.open()`` ... ``await store.close()``)."""
        if self.postgres_uri is not None:
            return PostgresStore(self.postgres_uri, writers=1, readers=1)
        return SqliteStore(str(self._sqlite_path), exclusive=False)

    def production(self, *, signing_key: str, event_key: str) -> None:
        """Run as ``stepwise start``: keys required, API calls need the signing key."""
        self.args[self.args.index("dev")] = "start"
        self.args.remove("--no-discovery")
        self.args += ["--signing-key", signing_key, "--event-key", event_key]
        self.event_key = event_key
        self.http.headers["authorization"] = f"Bearer {hash_signing_key(signing_key)}"

    def start_and_wait(self, timeout: float = 20) -> None:
        self.start()
        wait_until(
            lambda: self.http.get("/health").status_code == 200,
            timeout=timeout,
            what="server health",
        )

    def wait_for_functions(self, count: int, timeout: float = 20) -> None:
        def synced() -> bool:
            apps = self.http.get("/v1/apps").json()["data"]
            return sum(len(app["functions"]) for app in apps) >= count

        wait_until(synced, timeout=timeout, what=f"{count} synced functions")

    def send(self, name: str, data: dict[str, Any] | None = None, **fields: Any) -> str:
        body = [{"name": name, "data": data or {}, **fields}]
        r = self.http.post(
            f"/e/{self.event_key}",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )
        r.raise_for_status()
        ids: list[str] = r.json()["ids"]
        return ids[0]

    def runs(self, event_id: str) -> list[dict[str, Any]]:
        r = self.http.get(f"/v1/events/{event_id}/runs")
        r.raise_for_status()
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    def wait_for_run(self, event_id: str, timeout: float = 30) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            runs = self.runs(event_id)
            if runs and runs[0]["status"] in TERMINAL:
                return runs[0]
            return None

        result: dict[str, Any] = wait_until(done, timeout=timeout, what=f"run of event {event_id}")
        return result

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/runs/{run_id}")
        r.raise_for_status()
        data: dict[str, Any] = r.json()["data"]
        return data

    def wait_for_run_end(self, run_id: str, timeout: float = 30) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["status"] in TERMINAL else None

        result: dict[str, Any] = wait_until(done, timeout=timeout, what=f"end of run {run_id}")
        return result

    def history(self, run_id: str) -> list[dict[str, Any]]:
        r = self.http.get(f"/v1/runs/{run_id}/history")
        r.raise_for_status()
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    def events(self, name: str) -> list[dict[str, Any]]:
        r = self.http.get("/v1/events", params={"name": name, "limit": 100})
        r.raise_for_status()
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    def stop(self) -> None:
        super().stop()

    def close(self) -> None:
        self.stop()
        self.http.close()


class AppProcess(Process):
    """An app server: ``tests/integration/apps/<module>.py`` listening on ``PORT``."""

    def __init__(
        self, tmp: Path, module: str, *, server_url: str, extra_env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.ledger = tmp / f"{module}-{self.port}.ledger"
        env = _child_env(
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
        super().__init__(command, env=env, log_path=tmp / f"{module}-{self.port}.log")
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
