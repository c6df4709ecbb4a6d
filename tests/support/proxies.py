"""Proxies put between the server and an app, to make calls fail the way networks do."""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from typing import Any

Answer = tuple[int, dict[str, str], bytes]


class _Proxy:
    """A threaded HTTP server on a free port that hands each request to ``handle``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, headers, answer = proxy.handle(self, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, request: http.server.BaseHTTPRequestHandler, body: bytes) -> Answer:
        return self.forward(request, body)

    def forward(self, request: http.server.BaseHTTPRequestHandler, body: bytes) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            conn.request(request.command, request.path, body=body or None, headers=headers)
            response = conn.getresponse()
            skip = {"content-length", "transfer-encoding", "connection"}
            kept = {k: v for k, v in response.getheaders() if k.lower() not in skip}
            return response.status, kept, response.read()
        finally:
            conn.close()

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class GatewayTimeoutProxy(_Proxy):
    """In front of the app: forwards every call, but answers the first with a 504 after
    ``answer_after`` seconds while the app is still running it (an edge proxy timing out),
    and keeps what the app finally answered that first call."""

    def __init__(self, upstream_port: int, *, answer_after: float = 10) -> None:
        super().__init__(upstream_port)
        self.answer_after = answer_after
        self.calls = 0
        self.first_answer: tuple[int, bytes] | None = None
        self._lock = threading.Lock()

    def handle(self, request: http.server.BaseHTTPRequestHandler, body: bytes) -> Answer:
        with self._lock:
            first = self.calls == 0
            self.calls += 1
        if not first:
            return self.forward(request, body)
        threading.Thread(target=self._keep_first, args=(request, body)).start()
        time.sleep(self.answer_after)
        return 504, {"content-type": "text/plain"}, b"Gateway Timeout"

    def _keep_first(self, request: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        status, _, answer = self.forward(request, body)
        self.first_answer = (status, answer)


class FailingPathProxy(_Proxy):
    """In front of the server: answers every POST whose path starts with ``prefix`` with
    ``status`` (counted in ``refused``) and forwards every other request."""

    def __init__(self, upstream_port: int, prefix: str, *, status: int) -> None:
        super().__init__(upstream_port)
        self.prefix = prefix
        self.status = status
        self.refused = 0

    def handle(self, request: http.server.BaseHTTPRequestHandler, body: bytes) -> Answer:
        if request.command == "POST" and request.path.startswith(self.prefix):
            self.refused += 1
            return self.status, {"content-type": "text/plain"}, b"unavailable"
        return self.forward(request, body)
