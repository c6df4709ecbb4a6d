"""What every request handler reaches through ``request.app.state.stepwise``."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ServerConfig
from ..engine.engine import Engine


@dataclass
class ServerState:
    config: ServerConfig
    engine: Engine
