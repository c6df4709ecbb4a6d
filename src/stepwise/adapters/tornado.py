"""Serve functions from a Tornado app: ``serve(app, client, [fn])``."""

from __future__ import annotations

from collections.abc import Sequence

from tornado.web import Application, RequestHandler

from ..protocol import DEFAULT_SERVE_PATH
from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler, Streaming


class ServeEndpoint(RequestHandler):
    """The request handler; ``serve`` routes ``serve_path`` to it."""

    def initialize(self, handler: ServeHandler) -> None:
        self.handler = handler

    def check_xsrf_cookie(self) -> None:
        """Calls carry no cookie: in production they are signed instead."""

    async def _answer(self) -> None:
        request = self.request
        query = {name: values[-1].decode() for name, values in request.query_arguments.items()}
        result = await self.handler.handle(
            request.method or "GET", request.full_url(), dict(request.headers), request.body, query
        )
        self.set_status(result.status)
        for name, value in result.headers.items():
            self.set_header(name, value)
        if result.stream is not None:
            async for chunk in result.stream:
                self.write(chunk)
                await self.flush()
        self.finish(result.body)

    get = put = post = _answer


def serve(
    app: Application,
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
        framework="tornado",
        serve_origin=serve_origin,
        streaming=streaming,
        can_stream=True,
    )
    app.add_handlers(r".*", [(serve_path, ServeEndpoint, {"handler": handler})])
