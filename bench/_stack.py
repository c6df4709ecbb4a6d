"""Starts Stepwise servers and one benchmark app on free ports, and stops them afterwards.

``bench_stack`` is `stepwise dev` on a SQLite file; ``cluster`` is `stepwise start` (the
production mode) with one or more nodes on a store ``fresh_store`` makes. ``send_events``
and ``run_times`` drive the 3-step workload the benchmarks share.
"""

from __future__ import annotations

import itertools
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

SIGNING_KEY = "signkey-prod-" + "ab" * 32
EVENT_KEY = "bench-event-key"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

FINISHED_SQL = "SELECT count(*) FROM runs WHERE status IN ('Completed','Failed')"
TIMES_SQL = (
    "SELECT r.status, e.received_at, r.ended_at FROM runs r"
    " JOIN events e ON e.internal_id = r.event_id"
)

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port not handed out before: two calls in a row may otherwise get the same one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``th percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, sqlite3.Error):
            pass
        time.sleep(interval)
    raise TimeoutError(what)


@dataclass
class BenchStack:
    url: str
    db: Path
    http: httpx.Client
    server_pid: int


@contextmanager
def bench_stack(
    workdir: Path, name: str, app: Path, *, workers: int = 100, app_python: str = sys.executable
) -> Iterator[BenchStack]:
    """The server on a fresh SQLite file in ``workdir`` and ``app`` (run by ``app_python``)
    synced to it."""
    server_port, app_port = free_port(), free_port()
    url = f"http://127.0.0.1:{server_port}"
    db = workdir / f"{name}.db"
    env = {**os.environ, "PORT": str(app_port), "INNGEST_DEV": url, "PYTHONUNBUFFERED": "1"}
    logs = [open(workdir / f"{name}-{part}.log", "wb") for part in ("server", "app")]  # noqa: SIM115 - owned by the children
    command = [
        sys.executable, "-m", "stepwise", "dev", "--port", str(server_port), "--sqlite-path", str(db),
        "--no-discovery", "--no-poll", "--queue-workers", str(workers), "--log-level", "warning",
        "-u", f"http://127.0.0.1:{app_port}/api/inngest",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    app_proc = subprocess.Popen(
        [app_python, str(app)], env=env, stdout=logs[1], stderr=subprocess.STDOUT
    )
    http = httpx.Client(base_url=url, timeout=60)
    try:
        wait_for(lambda: http.get("/health").status_code == 200, 30, "the server")
        wait_for(lambda: http.get("/dev").json()["functions"], 30, "the app to sync")
        yield BenchStack(url=url, db=db, http=http, server_pid=server.pid)
    finally:
        http.close()
        for proc in (app_proc, server):
            proc.terminate()
            proc.wait(timeout=30)
        for log in logs:
            log.close()


@dataclass
class Store:
    """A fresh store for one scenario: the server's arguments for it and a way to query it."""

    args: list[str]
    query: Callable[[str], list[Any]]


@contextmanager
def fresh_store(
    backend: str, workdir: Path, name: str, postgres_admin: str = POSTGRES_ADMIN
) -> Iterator[Store]:
    """A new SQLite file in ``workdir``, or a new PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        db = workdir / f"{name}.db"

        def query_sqlite(sql: str) -> list[Any]:
            with sqlite3.connect(db) as reader:
                return reader.execute(sql).fetchall()

        yield Store(["--sqlite-path", str(db)], query_sqlite)
        return
    with fresh_postgres_database(postgres_admin, "stepwise_bench") as uri:

        def query_postgres(sql: str) -> list[Any]:
            with psycopg.connect(uri) as conn:
                return conn.execute(sql).fetchall()

        yield Store(["--postgres-uri", uri], query_postgres)


@contextmanager
def fresh_postgres_database(admin_uri: str, prefix: str) -> Iterator[str]:
    """A new database on the server of ``admin_uri``, dropped afterwards; yields its URI."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(admin_uri, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_uri.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def cluster(
    workdir: Path,
    name: str,
    backend_args: list[str],
    nodes: int,
    workers: int,
    *,
    app: Path,
    app_id: str = "bench",
    app_python: str = sys.executable,
) -> Iterator[list[httpx.Client]]:
    """``nodes`` servers on one database (`stepwise start`, production mode) and ``app``
    (run by ``app_python``), synced through the first node; yields a client per node."""
    ports = [free_port() for _ in range(nodes)]
    app_port = free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")},
        "PORT": str(app_port),
        "INNGEST_SIGNING_KEY": SIGNING_KEY,
        "INNGEST_BASE_URL": urls[0],
        "PYTHONUNBUFFERED": "1",
    }
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    clients = [
        httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {SIGNING_KEY}"})
        for url in urls
    ]
    try:
        for i, port in enumerate(ports):
            log = open(workdir / f"{name}-node{i}.log", "wb")  # noqa: SIM115 - owned by the child
            logs.append(log)
            command = [
                sys.executable, "-m", "stepwise", "start", "--port", str(port),
                "--signing-key", SIGNING_KEY, "--event-key", EVENT_KEY,
                "--no-poll", "--queue-workers", str(workers), "--log-level", "warning",
                *backend_args,
            ]  # fmt: skip
            if i == 0:
                command += ["-u", f"http://127.0.0.1:{app_port}/api/inngest"]
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            # Nodes start one after another: the first one migrates the database.
            wait_for(lambda c=clients[i]: c.get("/health").status_code == 200, 60, f"node {i}")
        app_log = open(workdir / f"{name}-app.log", "wb")  # noqa: SIM115 - owned by the child
        logs.append(app_log)
        procs.append(
            subprocess.Popen(
                [app_python, str(app)], env=env, stdout=app_log, stderr=subprocess.STDOUT
            )
        )
        for i, client in enumerate(clients):
            wait_for(
                lambda c=client: c.get(f"/v1/apps/{app_id}/functions").json().get("data"),
                60,
                f"node {i} to know the app",
            )
        yield clients
    finally:
        for client in clients:
            client.close()
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        for log in logs:
            log.close()


def send_events(clients: list[httpx.Client], events: int, batch: int, name: str) -> float:
    """Sends ``events`` events named ``name`` in batches, to the nodes in turn; seconds taken."""
    turn = itertools.cycle(clients)
    started = time.perf_counter()
    for offset in range(0, events, batch):
        body = [
            {"name": name, "data": {"i": i}} for i in range(offset, min(events, offset + batch))
        ]
        next(turn).post(f"/e/{EVENT_KEY}", json=body).raise_for_status()
    return time.perf_counter() - started


def run_times(query: Callable[[str], list[Any]], events: int, timeout: float) -> list[Any]:
    """Once ``events`` runs have ended: (status, event received_at, run ended_at) of each, in ms."""
    wait_for(lambda: query(FINISHED_SQL)[0][0] >= events, timeout, "all runs to finish")
    return query(TIMES_SQL)
