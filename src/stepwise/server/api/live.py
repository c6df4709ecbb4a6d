"""``GET /v1/live``: the live feed as server-sent events (see ``server/live.py``).

Each message is ``event: change`` with ``{"topics": [...]}``: what changed since the last
one (``runs``, ``events``, ``apps``); a comment line every ``KEEPALIVE_S`` seconds keeps
proxies from closing a quiet stream. The stream ends when the server stops; an
``EventSource`` reconnects by itself (``retry`` says after how long).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .auth import require_api_key
from .state import ServerState

KEEPALIVE_S = 15.0
RETRY_MS = 2000


async def live(request: Request) -> Response:
    await require_api_key(request)
    state: ServerState = request.app.state.stepwise
    feed = state.engine.live

    async def stream() -> AsyncIterator[str]:
        with feed.listen() as listener:
            yield f"retry: {RETRY_MS}\n\n"
            while True:
                topics = await listener.next(KEEPALIVE_S)
                if topics is None:
                    return
                if not topics:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: change\ndata: {json.dumps({'topics': topics})}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
