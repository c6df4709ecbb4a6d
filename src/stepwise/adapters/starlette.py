"""Serve functions from a Starlette app, or as a standalone ASGI app.

``serve`` returns a list with one ``Route`` (GET, PUT, POST at ``serve_path``) to add to
your app's routes; ``app`` builds a whole ``Starlette`` app around it, handy for running
a set of functions under uvicorn: ``uvicorn.run(app(client, [fn]), port=8000)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..protocol import DEFAULT_SERVE_PATH
from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler, Streaming

METHODS = ["GET", "PUT", "POST"]


def endpoint(handler: ServeHandler) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette request handler that delegates to the framework-agnostic ``handler``."""

    async def serve_endpoint(request: Request) -> Response:
        body = await request.body()
        result = await handler.handle(
            request.method,
            str(request.url),
            dict(request.headers),
            body,
            query=dict(request.query_params),
        )
        if result.stream is not None:
            return StreamingResponse(result.stream, result.status, headers=result.headers)
        return Response(content=result.body, status_code=result.status, headers=result.headers)

    return serve_endpoint


def serve(
    client: Stepwise,
    functions: Sequence[Function],
    *,
    serve_path: str = DEFAULT_SERVE_PATH,
    serve_origin: str | None = None,
    framework: str = "starlette",
    streaming: Streaming | bool | None = None,
) -> list[Route]:
    """Routes serving ``functions``: ``Starlette(routes=[*serve(client, fns), ...])``."""
    handler = ServeHandler(
        client,
        functions,
        framework=framework,
        serve_origin=serve_origin,
        streaming=streaming,
        can_stream=True,
    )
    return [Route(serve_path, endpoint(handler), methods=METHODS)]


def app(
    client: Stepwise,
    functions: Sequence[Function],
    *,
    serve_path: str = DEFAULT_SERVE_PATH,
    serve_origin: str | None = None,
    streaming: Streaming | bool | None = None,
) -> Starlette:
    """A standalone ASGI app that serves ``functions`` at ``serve_path``."""
    return Starlette(
        routes=serve(
            client,
            functions,
            serve_path=serve_path,
            serve_origin=serve_origin,
            streaming=streaming,
        )
    )
