"""Serve functions from a FastAPI app: ``serve(app, client, [fn])``."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from ..protocol import DEFAULT_SERVE_PATH
from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler, Streaming
from .starlette import METHODS, endpoint


def serve(
    app: FastAPI,
    client: Stepwise,
    functions: Sequence[Function],
    *,
    serve_path: str = DEFAULT_SERVE_PATH,
    serve_origin: str | None = None,
    streaming: Streaming | bool | None = None,
) -> None:
    """Add the serve endpoint (GET, PUT, POST at ``serve_path``) to ``app``.

    The route is left out of the OpenAPI schema: it speaks the Inngest protocol, not
    the app's API.
    """
    handler = ServeHandler(
        client,
        functions,
        framework="fastapi",
        serve_origin=serve_origin,
        streaming=streaming,
        can_stream=True,
    )
    app.add_route(serve_path, endpoint(handler), methods=METHODS, include_in_schema=False)
