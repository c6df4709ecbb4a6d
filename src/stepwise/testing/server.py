"""A real ``stepwise dev`` in a child process, on a free port and a SQLite file of its own.

What the pytest plugin's ``stepwise_server`` fixture starts, and what this project's own
integration tests build on (``tests/support/harness.py``). Nothing is mocked: the server is
``python -m stepwise dev``, and everything here talks to it over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ..protocol import dumps
from ..sdk.event import Event, EventLike

TERMINAL = frozenset({"Completed", "Failed", "Cancelled", "Skipped"})
"""Run statuses that do not change any more."""

T = TypeVar("T")

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
    """Call ``check`` until it returns something true (returned), or raise ``TimeoutError``."""
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
    raise _timed_out(timeout, what, last_error)


async def wait_until_async(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,  # noqa: ASYNC109 - the same helper as wait_until, for async callers
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """``wait_until`` for async code: awaits ``check`` until it returns something true."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = await check()
        except Exception as exc:
            last_error = exc
            value = None
        if value:
            return value
        await asyncio.sleep(interval)
    raise _timed_out(timeout, what, last_error)


def _timed_out(timeout: float, what: str, last_error: Exception | None) -> TimeoutError:
    return TimeoutError(
        f"timed out after {timeout}s waiting for {what}"
        + (f" (last error: {last_error})" if last_error else "")
    )


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a child, without ``INNGEST_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Process:
    """A child process whose output goes to a log file."""

    def __init__(
        self, args: list[str], *, env: dict[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd
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


def _events_body(events: EventLike | Sequence[EventLike]) -> bytes:
    items: Sequence[EventLike] = [events] if isinstance(events, Event | Mapping) else events
    return dumps([e.to_wire() if isinstance(e, Event) else dict(e) for e in items])


class DevServer(Process):
    """``stepwise dev`` on ``directory/stepwise.db`` (or ``postgres_uri``) and a free port.

    ``retry_interval`` (seconds) replaces the backoff table between attempts, so runs
    that retry end quickly; ``poll_interval`` is how often the server re-syncs the apps it
    knows (``None``: never; apps that sync themselves need no polling). Use it as a context manager, or ``start_and_wait`` and
    ``close``. Its helpers send events and wait for runs, sync or ``..._async``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        sdk_urls: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        extra_env: dict[str, str] | None = None,
        postgres_uri: str | None = None,
        retry_interval: float | None = None,
        poll_interval: float | None = 1.0,
        cwd: Path | None = None,
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.postgres_uri = postgres_uri
        self.sqlite_path = directory / "stepwise.db"
        database = (
            ["--sqlite-path", str(self.sqlite_path)]
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
            *(["--no-poll"] if poll_interval is None else ["--poll-interval", str(poll_interval)]),
        ]
        if retry_interval is not None:
            args += ["--retry-interval", str(retry_interval)]
        for url in sdk_urls:
            args += ["-u", url]
        args += list(extra_args)
        super().__init__(
            args,
            env=child_env(extra_env),
            log_path=directory / f"server-{self.port}.log",
            cwd=cwd,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.event_key = "test-key"

    def __enter__(self) -> DevServer:
        try:
            self.start_and_wait()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_and_wait(self, timeout: float = 20) -> None:
        self.start()
        try:
            wait_until(
                lambda: self.http.get("/health").status_code == 200,
                timeout=timeout,
                what="server health",
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- server log ---\n{self.log()[-4000:]}") from None

    def close(self) -> None:
        self.stop()
        self.http.close()

    # ---- HTTP --------------------------------------------------------------------------

    def _data(self, path: str, **params: Any) -> Any:
        """The ``data`` of a REST API answer (``GET``)."""
        response = self.http.get(path, params=params or None)
        response.raise_for_status()
        return response.json()["data"]

    async def _data_async(self, path: str, **params: Any) -> Any:
        async with self._async_http() as http:
            response = await http.get(path, params=params or None)
        response.raise_for_status()
        return response.json()["data"]

    def _async_http(self) -> httpx.AsyncClient:
        # One per call: an async client belongs to the event loop it was first used on.
        return httpx.AsyncClient(base_url=self.url, timeout=10, headers=dict(self.http.headers))

    # ---- apps and functions ------------------------------------------------------------

    def apps(self) -> list[dict[str, Any]]:
        apps: list[dict[str, Any]] = self._data("/v1/apps")
        return apps

    def wait_for_functions(self, count: int, timeout: float = 20) -> None:
        def synced() -> bool:
            return sum(len(app["functions"]) for app in self.apps()) >= count

        wait_until(synced, timeout=timeout, what=f"{count} synced functions")

    # ---- events ------------------------------------------------------------------------

    def send(self, name: str, data: dict[str, Any] | None = None, **fields: Any) -> str:
        """Send one event; returns its ID."""
        return self.send_events({"name": name, "data": data or {}, **fields})[0]

    def send_events(self, events: EventLike | Sequence[EventLike]) -> list[str]:
        """Send events (``Event`` objects or dicts); returns their IDs in order."""
        return _ids(
            self.http.post(f"/e/{self.event_key}", content=_events_body(events), headers=_JSON)
        )

    async def send_async(self, name: str, data: dict[str, Any] | None = None, **fields: Any) -> str:
        return (await self.send_events_async({"name": name, "data": data or {}, **fields}))[0]

    async def send_events_async(self, events: EventLike | Sequence[EventLike]) -> list[str]:
        async with self._async_http() as http:
            response = await http.post(
                f"/e/{self.event_key}", content=_events_body(events), headers=_JSON
            )
        return _ids(response)

    def events(self, name: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self._data("/v1/events", name=name, limit=100)
        return events

    # ---- runs --------------------------------------------------------------------------

    def runs(self, event_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self._data(f"/v1/events/{event_id}/runs")
        return runs

    def run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self._data(f"/v1/runs/{run_id}")
        return run

    def history(self, run_id: str) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = self._data(f"/v1/runs/{run_id}/history")
        return history

    def wait_for_run(self, event_id: str, timeout: float = 30) -> dict[str, Any]:
        """The (first) run ``event_id`` started, once it has ended."""
        run: dict[str, Any] = wait_until(
            lambda: _ended(self.runs(event_id)), timeout=timeout, what=f"run of event {event_id}"
        )
        return run

    async def wait_for_run_async(
        self,
        event_id: str,
        timeout: float = 30,  # noqa: ASYNC109 - as wait_for_run's
    ) -> dict[str, Any]:
        async def ended() -> dict[str, Any] | None:
            return _ended(await self._data_async(f"/v1/events/{event_id}/runs"))

        return await wait_until_async(ended, timeout=timeout, what=f"run of event {event_id}")

    def wait_for_run_end(self, run_id: str, timeout: float = 30) -> dict[str, Any]:
        run: dict[str, Any] = wait_until(
            lambda: _ended([self.run(run_id)]), timeout=timeout, what=f"end of run {run_id}"
        )
        return run

    def trigger(
        self, event: str | EventLike, data: dict[str, Any] | None = None, *, timeout: float = 30
    ) -> dict[str, Any]:
        """Send one event (a name and its data, or an event) and wait for the run it starts
        to end; returns that run (``GET /v1/runs/{id}``: ``status``, ``output``, ...)."""
        (event_id,) = self.send_events(_one_event(event, data))
        return self.wait_for_run(event_id, timeout=timeout)

    async def trigger_async(
        self,
        event: str | EventLike,
        data: dict[str, Any] | None = None,
        *,
        timeout: float = 30,  # noqa: ASYNC109 - as trigger's
    ) -> dict[str, Any]:
        (event_id,) = await self.send_events_async(_one_event(event, data))
        return await self.wait_for_run_async(event_id, timeout=timeout)


_JSON = {"content-type": "application/json"}


def _ids(response: httpx.Response) -> list[str]:
    response.raise_for_status()
    ids: list[str] = response.json()["ids"]
    return ids


def _ended(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first of ``runs`` if it has ended."""
    return runs[0] if runs and runs[0]["status"] in TERMINAL else None


def _one_event(event: str | EventLike, data: dict[str, Any] | None) -> EventLike:
    if isinstance(event, str):
        return {"name": event, "data": data or {}}
    if data is not None:
        raise TypeError("pass data only with an event name")
    return event
