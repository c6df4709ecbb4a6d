"""Serve functions from an aiohttp app: ``serve(app, client, [fn])``.

Call requests can be up to 4 MB, above aiohttp's default ``client_max_size`` of 1 MiB:
create the app with ``web.Application(client_max_size=...)`` large enough.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from ..protocol import DEFAULT_SERVE_PATH
from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler, Streaming
from . import METHODS


def serve(
    app: web.Application,
    client: Stepwise,
    functions: Sequence[Function],
    *,
    serve_path: str = DEFAULT_SERVE_PATH,
    serve_origin: str | None = None,
    streaming: Streaming | bool | None = None,
) -> None:
    """Add the serve endpoint (GET, PUT, POST at ``serve_path``) to ``app``."""
    handler = ServeHandler(
        client,
        functions,
        framework="aiohttp",
        serve_origin=serve_origin,
        streaming=streaming,
        can_stream=True,
    )

    async def serve_endpoint(request: web.Request) -> web.StreamResponse:
        result = await handler.handle(
            request.method,
            str(request.url),
            dict(request.headers),
            await request.read(),
            query=dict(request.query),
        )
        if result.stream is None:
            return web.Response(body=result.body, status=result.status, headers=result.headers)
        response = web.StreamResponse(status=result.status, headers=result.headers)
        await response.prepare(request)
        async for chunk in result.stream:
            await response.write(chunk)
        await response.write_eof()
        return response

    for method in METHODS:
        app.router.add_route(method, serve_path, serve_endpoint)
