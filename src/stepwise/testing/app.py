"""Serve a client's functions to a ``DevServer`` from this process, for as long as a test runs.

The app is the Starlette adapter under uvicorn in a thread of its own (with its own event
loop), on a free port. While it serves, the client points at the server (its API and event
API URLs, dev mode), so ``client.send`` inside the functions reaches the same server; the
client's settings are put back when the app stops.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

import httpx
import uvicorn

from ..adapters.starlette import app as starlette_app
from ..errors import RegistrationError
from ..protocol import DEFAULT_SERVE_PATH
from ..sdk.client import Stepwise
from ..sdk.config import ClientConfig
from ..sdk.function import Function
from .server import DevServer, free_port, wait_until


class ServedApp:
    """``functions`` of ``client``, served to ``server`` and synced with it."""

    def __init__(
        self,
        server: DevServer,
        client: Stepwise,
        functions: Sequence[Function],
        *,
        port: int | None = None,
    ) -> None:
        self.server = server
        self.client = client
        self.functions = list(functions)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}{DEFAULT_SERVE_PATH}"
        self._saved_config: ClientConfig | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ServedApp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 20) -> None:
        self._point_client_at_server()
        config = uvicorn.Config(
            starlette_app(self.client, self.functions),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        server = self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, name=f"stepwise-app-{self.port}", daemon=True
        )
        self._thread.start()
        try:
            wait_until(lambda: server.started, timeout=timeout, what=f"app on {self.url}")
            self.sync()
        except BaseException:
            self.stop()
            raise

    def sync(self, timeout: float = 20) -> None:
        """Register the functions with the server now (the PUT a dev server sends an app)."""
        response = httpx.put(self.url, timeout=timeout)
        if response.status_code != 200:
            raise RegistrationError(f"sync failed ({response.status_code}): {response.text}")
        ids = {f.id for f in self.functions}

        def synced() -> bool:
            # Served from this app's URL: an earlier sync of the same app pointed elsewhere.
            served = {
                fn["slug"]
                for app in self.server.apps()
                if app["name"] == self.client.app_id
                for fn in app["functions"]
                if str(fn["url"]).startswith(self.url)
            }
            return ids <= served

        wait_until(synced, timeout=timeout, what=f"functions {sorted(ids)} to sync")

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._uvicorn = self._thread = None
        if self._saved_config is not None:
            self.client.config = self._saved_config
            self._saved_config = None

    def _point_client_at_server(self) -> None:
        self._saved_config = self.client.config
        self.client.config = dataclasses.replace(
            self.client.config,
            is_production=False,
            api_base_url=self.server.url,
            event_api_base_url=self.server.url,
            event_key=self.server.event_key,
            signing_key=None,
            signing_key_fallback=None,
            serve_origin=None,
            serve_path=None,
        )
