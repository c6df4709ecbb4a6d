"""``GET /metrics``: the Prometheus text format (see ``server/metrics.py``)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from ..engine.executor import now_ms
from .auth import require_api_key
from .state import ServerState


async def metrics(request: Request) -> Response:
    await require_api_key(request)
    state: ServerState = request.app.state.stepwise
    engine = state.engine
    now = now_ms()
    stats = await engine.store.queue_stats(now)
    return Response(engine.metrics.exposition(stats, now), media_type=CONTENT_TYPE_LATEST)
