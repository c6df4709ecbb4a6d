"""Server settings, shared by ``stepwise dev`` and ``stepwise start``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..protocol import headers as h

# Largest event, in bytes: the reference's default in production, and its absolute limit,
# which the dev server allows (the official SDKs' own tests send events of 1 MB).
MAX_EVENT_BYTES = 512 * 1024
DEV_MAX_EVENT_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Defaults are production's, the safe ones: ``stepwise dev`` asks for the fast ones."""

    host: str = "127.0.0.1"
    port: int = 8288
    sqlite_path: str = ".stepwise/stepwise.db"
    # NORMAL survives a killed process; FULL also survives losing the machine.
    sqlite_synchronous: str = "FULL"
    # When set, the store is this PostgreSQL database (shared by many nodes), not SQLite.
    postgres_uri: str | None = None
    # Writer connections (threads) of this node on PostgreSQL. One is fastest near the
    # database: every commit goes through one thread, so no other thread contends for
    # the interpreter; more keep writing while one waits on a far database or a lock.
    postgres_writers: int = 1
    dev: bool = False
    # When the port is taken, listen on the next free one (``stepwise dev``) instead of failing.
    port_fallback: bool = False
    sdk_urls: tuple[str, ...] = ()
    discovery: bool = False
    poll: bool = True
    poll_interval_s: float = 5.0
    retry_interval_s: float | None = None
    queue_workers: int = 100
    call_timeout_s: float = 2 * 3600.0
    # A job's lease; renewed three times per lease while its call is in flight.
    lease_s: float = 15.0
    # Finished runs' history (and events no stored run needs) is deleted this long after
    # they finished; None keeps everything. Swept every ``retention_sweep_s``.
    retention_ms: int | None = 30 * 24 * 3600 * 1000
    retention_sweep_s: float = 60.0
    signing_key: str | None = None
    # Act on streamed replies signed only at their start (the official Python SDK's), whose
    # streamed body nothing vouches for. Off: production acts only on fully signed replies.
    accept_unsigned_stream_bodies: bool = False
    event_keys: tuple[str, ...] = field(default_factory=tuple)
    max_event_bytes: int = MAX_EVENT_BYTES
    max_events_per_request: int = 5000
    max_request_bytes: int = 64 * 1024 * 1024
    # Requests made for step.fetch: production refuses non-public destinations unless allowed.
    outbound_timeout_s: float = 300.0
    outbound_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    outbound_deny: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def max_event_request_bytes(self) -> int:
        """The largest ``POST /e/{key}`` body: room for a full batch and for one largest event."""
        return max(self.max_request_bytes, self.max_event_bytes)

    @property
    def server_kind(self) -> str:
        return h.SERVER_KIND_DEV if self.dev else h.SERVER_KIND_CLOUD
