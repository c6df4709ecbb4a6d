"""Serve functions as a plain WSGI callable, with no framework: ``app(client, [fn])``.

It answers every path it is given, so mount it where the serve endpoint should be (or run
it alone under any WSGI server). Each request blocks its thread while the handler's own
event loop thread does the work, so ``def`` and ``async def`` functions both work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from http import HTTPStatus
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment
from wsgiref.util import request_uri

from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler, Streaming


def app(
    client: Stepwise,
    functions: Sequence[Function],
    *,
    serve_origin: str | None = None,
    streaming: Streaming | bool | None = None,
) -> WSGIApplication:
    """A WSGI application serving ``functions``."""
    handler = ServeHandler(
        client,
        functions,
        framework="wsgi",
        serve_origin=serve_origin,
        streaming=streaming,
        can_stream=True,
    )

    def serve_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        result = handler.handle_sync(environ["REQUEST_METHOD"], request_uri(environ), headers, body)
        status = f"{result.status} {HTTPStatus(result.status).phrase}"
        start_response(status, list(result.headers.items()))
        return [result.body] if result.stream is None else handler.sync_stream(result.stream)

    return serve_app
