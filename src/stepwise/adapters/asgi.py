"""Serve functions as a plain ASGI callable, with no framework: ``app(client, [fn])``.

It answers every path it is given, so mount it where the serve endpoint should be (or run
it alone: ``uvicorn.run(app(client, [fn]))``). Lifespan events are acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler, Streaming

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def app(
    client: Stepwise,
    functions: Sequence[Function],
    *,
    serve_origin: str | None = None,
    streaming: Streaming | bool | None = None,
) -> ASGIApp:
    """An ASGI 3 application serving ``functions``."""
    handler = ServeHandler(
        client,
        functions,
        framework="asgi",
        serve_origin=serve_origin,
        streaming=streaming,
        can_stream=True,
    )

    async def serve_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            raise RuntimeError(f"the serve endpoint speaks HTTP, not {scope['type']}")
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        result = await handler.handle(scope["method"], _url(scope, headers), headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": result.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in result.headers.items()
                ],
            }
        )
        if result.stream is not None:
            async for chunk in result.stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": result.body})

    return serve_app


def _url(scope: Scope, headers: dict[str, str]) -> str:
    host = headers.get("host")
    if host is None and scope.get("server"):
        host = "{}:{}".format(*scope["server"])
    path = scope.get("root_path", "") + scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host or 'localhost'}{path}" + (
        f"?{query}" if query else ""
    )
