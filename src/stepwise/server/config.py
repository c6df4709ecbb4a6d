"""Server settings, shared by ``stepwise dev`` and ``stepwise start``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..protocol import headers as h


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8288
    sqlite_path: str = ".stepwise/dev.db"
    # NORMAL survives a killed process; FULL also survives losing the machine.
    sqlite_synchronous: str = "NORMAL"
    dev: bool = True
    sdk_urls: tuple[str, ...] = ()
    discovery: bool = True
    poll: bool = True
    poll_interval_s: float = 5.0
    retry_interval_s: float | None = None
    queue_workers: int = 100
    call_timeout_s: float = 2 * 3600.0
    signing_key: str | None = None
    event_keys: tuple[str, ...] = field(default_factory=tuple)
    max_event_bytes: int = 512 * 1024
    max_events_per_request: int = 5000
    max_request_bytes: int = 64 * 1024 * 1024
    # Requests made for step.fetch: production refuses non-public destinations unless allowed.
    outbound_timeout_s: float = 300.0
    outbound_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    outbound_deny: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def server_kind(self) -> str:
        return h.SERVER_KIND_DEV if self.dev else h.SERVER_KIND_CLOUD
