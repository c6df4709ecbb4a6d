"""Serve functions from a Quart app: ``serve(app, client, [fn])``."""

from __future__ import annotations

from collections.abc import Sequence

from quart import Quart, Response, request

from ..protocol import DEFAULT_SERVE_PATH
from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler, Streaming
from . import METHODS


def serve(
    app: Quart,
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
        framework="quart",
        serve_origin=serve_origin,
        streaming=streaming,
        can_stream=True,
    )

    async def serve_endpoint() -> Response:
        result = await handler.handle(
            request.method,
            request.url,
            dict(request.headers),
            await request.get_data(cache=False, as_text=False, parse_form_data=False),
            query=request.args.to_dict(),
        )
        body = result.body if result.stream is None else result.stream
        return Response(body, status=result.status, headers=result.headers)

    app.add_url_rule(
        serve_path, endpoint=f"stepwise:{serve_path}", view_func=serve_endpoint, methods=METHODS
    )
