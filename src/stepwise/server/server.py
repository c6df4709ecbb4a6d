"""One server process: the engine, the HTTP API under uvicorn, and app syncing."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable
from types import FrameType

import httpx
import uvicorn

from ..protocol import headers as h
from .api.state import ServerState
from .app import build_app
from .config import ServerConfig
from .engine.app_sync import SyncOutcome, served_apps, sync_url, trusted_urls, urls_to_sync
from .engine.engine import Engine
from .engine.outbound import DestinationPolicy, OutboundClient
from .store.base import Store
from .store.postgres.store import PostgresStore
from .store.sqlite.store import SqliteStore

log = logging.getLogger("stepwise.server")

# Where the dev server looks for apps on 127.0.0.1, as the reference dev server does.
DISCOVERY_PORTS = (
    80,
    443,
    *range(3000, 3011),
    4321,
    5000,
    5173,
    8000,
    8080,
    8081,
    8888,
    *range(8910, 8916),
    8787,
)
# How many ports after a taken one ``stepwise dev`` tries before it gives up.
PORT_ATTEMPTS = 20

DISCOVERY_PATHS = (
    "/api/inngest",
    "/x/inngest",
    "/.netlify/functions/inngest",
    "/.redwood/functions/inngest",
)


class Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        store: Store
        if config.postgres_uri:
            store = PostgresStore(config.postgres_uri, writers=config.postgres_writers)
        else:
            store = SqliteStore(config.sqlite_path, synchronous=config.sqlite_synchronous)
        self.engine = Engine(
            store,
            signing_key=config.signing_key,
            server_kind=config.server_kind,
            retry_interval_s=config.retry_interval_s,
            concurrency=config.queue_workers,
            call_timeout_s=config.call_timeout_s,
            lease_s=config.lease_s,
            retention_ms=config.retention_ms,
            retention_sweep_s=config.retention_sweep_s,
            accept_unsigned_stream_bodies=config.accept_unsigned_stream_bodies,
            outbound=OutboundClient(
                DestinationPolicy(
                    public_only=not config.dev,
                    allow=config.outbound_allow,
                    deny=config.outbound_deny,
                ),
                # Never longer than an app call: a job's lease is sized for that.
                timeout_s=min(config.outbound_timeout_s, config.call_timeout_s),
                max_connections=config.queue_workers,
            ),
        )
        self.app = build_app(ServerState(config=config, engine=self.engine))
        self._known_urls: set[str] = set(config.sdk_urls)
        self.port = config.port  # the one listened on, once ``serve`` has bound it

    async def serve(self) -> None:
        # Bound before anything starts, and handed to uvicorn: no other process can take
        # the port between the check and the listening.
        listener = bind_listener(
            self.config.host,
            self.config.port,
            attempts=PORT_ATTEMPTS if self.config.port_fallback else 1,
        )
        self.port = listener.getsockname()[1]
        if self.port != self.config.port:
            host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
            log.warning(
                "port %d is in use: listening on port %d instead; point apps at it "
                "(INNGEST_DEV=http://%s:%d)",
                self.config.port,
                self.port,
                host,
                self.port,
            )
        await self.engine.start()
        uv = _Uvicorn(
            self.engine.live.close,
            uvicorn.Config(
                self.app,
                host=self.config.host,
                port=self.config.port,
                log_level="warning",
                lifespan="off",
                access_log=False,
            ),
        )
        syncer = asyncio.create_task(self._sync_apps(uv))
        try:
            await uv.serve(sockets=[listener])
        finally:
            syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncer
            await self.engine.stop()

    async def _sync_apps(self, uv: uvicorn.Server) -> None:
        while not uv.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
        log.info(
            "stepwise %s server listening on http://%s:%d",
            self.config.server_kind,
            self.config.host,
            self.port,
        )
        async with httpx.AsyncClient(timeout=2.0) as probe:
            while True:
                self._known_urls.update(await urls_to_sync(self.engine, self.config.sdk_urls))
                trusted = await trusted_urls(self.engine, self.config.sdk_urls)
                for url in sorted(self._known_urls):
                    await self._ping(url, guarded=url not in trusted)
                if self.config.discovery and not self._known_urls:
                    await self._discover(probe)
                # Without polling, keep retrying only until an app has synced.
                if not self.config.poll and await served_apps(self.engine):
                    return
                await asyncio.sleep(self.config.poll_interval_s)

    async def _ping(self, url: str, *, guarded: bool = False) -> None:
        result = await sync_url(self.engine, url, guarded=guarded)
        if result.outcome is SyncOutcome.UNREACHABLE:
            log.debug("could not reach app at %s: %s", url, result.record.error)
        elif not result.ok:
            log.warning("syncing the app at %s failed: %s", url, result.record.error)

    async def _discover(self, client: httpx.AsyncClient) -> None:
        ports = list(DISCOVERY_PORTS)
        if os.environ.get("PORT", "").isdigit():
            ports.append(int(os.environ["PORT"]))
        for port in ports:
            if port == self.port:
                continue
            for path in DISCOVERY_PATHS:
                url = f"http://127.0.0.1:{port}{path}"
                try:
                    response = await client.get(url)
                except httpx.HTTPError:
                    break  # nothing listens on this port
                if h.SDK in response.headers:
                    log.info("discovered an app at %s", url)
                    self._known_urls.add(url)
                    await self._ping(url)
                    return


class CannotListen(OSError):
    """The server cannot listen where it was told to (taken, or not allowed)."""


def bind_listener(host: str, port: int, *, attempts: int) -> socket.socket:
    """A socket listening on ``port``, or on the next free one of ``attempts`` ports.

    Bound as uvicorn binds (``SO_REUSEADDR``, so a port left in TIME_WAIT by a server
    that just stopped is free; one another process listens on is not).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for candidate in range(port, min(port + attempts, 65536)):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise CannotListen(
                    exc.errno, f"cannot listen on {host}:{candidate}: {exc}"
                ) from exc
            continue
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock
    tried = f"port {port}" if attempts == 1 else f"ports {port} to {port + attempts - 1}"
    raise CannotListen(errno.EADDRINUSE, f"{tried} on {host} already in use")


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, ending the live feed's streams as soon as it is asked to stop:
    otherwise its graceful shutdown would wait for them, and they never end by themselves."""

    def __init__(self, on_exit: Callable[[], None], config: uvicorn.Config) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Called from a signal handler: hand the work to the event loop.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon_threadsafe(self._on_exit)
        super().handle_exit(sig, frame)
