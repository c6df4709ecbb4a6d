"""A small HTTP server of a test's own, in a thread: a misbehaving app, or a URL to fetch.

Each request is recorded and answered by the test's ``respond`` function, so a test can
play a peer that no real SDK or website would be (an unsigned "SDK", a redirect, a body
that never ends) and then check what reached it. ``function_config`` describes a function
of such an app the way an SDK syncs it (``POST /fn/register``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .harness import ServerProcess


@dataclass(frozen=True)
class Received:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Peer:
    """``with Peer(respond) as peer:`` serves on ``peer.url`` until the block ends."""

    def __init__(self, respond: Callable[[Received], Answer], *, host: str = "127.0.0.1") -> None:
        self.respond = respond
        self.received: list[Received] = []
        self._lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = Received(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                with peer._lock:
                    peer.received.append(request)
                answer = peer.respond(request)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test reads ``received``; stderr stays quiet

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def requests_to(self, path_prefix: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.startswith(path_prefix)]

    def __enter__(self) -> Peer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def function_config(fn_id: str, serve_url: str, *, event: str, retries: int) -> dict[str, Any]:
    """A function served at ``serve_url`` as an SDK syncs it: ``retries`` after the first try."""
    return {
        "id": fn_id,
        "name": fn_id,
        "triggers": [{"event": event}],
        "steps": {
            "step": {
                "id": "step",
                "name": "step",
                "runtime": {"type": "http", "url": f"{serve_url}?fnId={fn_id}&stepId=step"},
                "retries": {"attempts": retries},
            }
        },
    }


def sync_peer(
    server: ServerProcess, app: Peer, name: str, functions: dict[str, str], *, retries: int
) -> None:
    """Register ``app`` with ``server`` as an SDK would: ``functions`` maps id to event."""
    serve_url = f"{app.url}/api/inngest"
    configs = [
        function_config(fn_id, serve_url, event=event, retries=retries)
        for fn_id, event in functions.items()
    ]
    sync = {"url": serve_url, "appName": name, "sdk": "py:v0.5.19", "v": "0.1"}
    server.http.post("/fn/register", json={**sync, "functions": configs}).raise_for_status()
    server.wait_for_functions(len(configs))
