"""Serve functions from a Flask app: ``serve(app, client, [fn])``.

The view is a plain ``def``; the call runs on the handler's own event loop thread, so
``def`` and ``async def`` functions both work.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Flask, Response, request

from ..protocol import DEFAULT_SERVE_PATH
from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler, Streaming
from . import METHODS


def serve(
    app: Flask,
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
        framework="flask",
        serve_origin=serve_origin,
        streaming=streaming,
        can_stream=True,
    )

    def serve_endpoint() -> Response:
        result = handler.handle_sync(
            request.method,
            request.url,
            dict(request.headers),
            request.get_data(),
            query=request.args.to_dict(),
        )
        if result.stream is not None:
            chunks = handler.sync_stream(result.stream)
            return Response(chunks, status=result.status, headers=result.headers)
        return Response(result.body, status=result.status, headers=result.headers)

    app.add_url_rule(
        serve_path, endpoint=f"stepwise:{serve_path}", view_func=serve_endpoint, methods=METHODS
    )
