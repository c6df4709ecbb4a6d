"""Serve functions from a Litestar app: ``Litestar(route_handlers=[serve(client, [fn])])``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request, Response, route
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from ..protocol import DEFAULT_SERVE_PATH
from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler, Streaming


def serve(
    client: Stepwise,
    functions: Sequence[Function],
    *,
    serve_path: str = DEFAULT_SERVE_PATH,
    serve_origin: str | None = None,
    streaming: Streaming | bool | None = None,
) -> HTTPRouteHandler:
    """A route handler answering GET, PUT and POST at ``serve_path``; left out of OpenAPI."""
    handler = ServeHandler(
        client,
        functions,
        framework="litestar",
        serve_origin=serve_origin,
        streaming=streaming,
        can_stream=True,
    )

    async def serve_endpoint(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
        result = await handler.handle(
            request.method,
            str(request.url),
            dict(request.headers),
            await request.body(),
            query=dict(request.query_params),
        )
        headers = dict(result.headers)
        media_type = headers.pop("content-type")
        if result.stream is not None:
            return Stream(
                result.stream, status_code=result.status, headers=headers, media_type=media_type
            )
        return Response(
            result.body, status_code=result.status, headers=headers, media_type=media_type
        )

    return route(serve_path, http_method=["GET", "PUT", "POST"], include_in_schema=False)(
        serve_endpoint
    )
