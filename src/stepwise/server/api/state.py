"""What every request handler reaches through ``request.app.state.stepwise``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ServerConfig
from ..engine.engine import Engine
from ..live import StreamHub
from .authenticator import Authenticator


@dataclass
class ServerState:
    config: ServerConfig
    engine: Engine
    auth: Authenticator = field(default_factory=Authenticator)
    # Subscribers of durable endpoints' streams on this node (``api/realtime.py``).
    streams: StreamHub = field(default_factory=StreamHub)
