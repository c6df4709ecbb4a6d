"""Starts `stepwise dev` and one benchmark app on free ports, and stops them afterwards."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

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
def bench_stack(workdir: Path, name: str, app: Path, *, workers: int = 100) -> Iterator[BenchStack]:
    """The server on a fresh SQLite file in ``workdir`` and ``app`` synced to it."""
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
        [sys.executable, str(app)], env=env, stdout=logs[1], stderr=subprocess.STDOUT
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
