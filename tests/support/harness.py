"""Real processes for integration tests: a Stepwise server and app servers, on free ports.

Nothing here is mocked: the server is ``python -m stepwise dev`` on a real SQLite file,
apps are real HTTP servers, and tests talk to both over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from stepwise.protocol import hash_signing_key

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
    ) -> None:
        self.port = port or free_port()
        self.db = tmp / "stepwise.db"
        args = [
            sys.executable,
            "-m",
            "stepwise",
            "dev",
            "--port",
            str(self.port),
            "--no-discovery",
            "--sqlite-path",
            str(self.db),
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
