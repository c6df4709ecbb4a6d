"""Serve functions from a Django project: add ``serve(client, [fn])`` to ``urlpatterns``.

``async_mode=False`` (the default) gives a ``def`` view, for WSGI deployments;
``async_mode=True`` an ``async def`` view, for ASGI ones (Django runs ``def`` views under
ASGI one at a time on a single thread). Call requests can be up to 4 MB, above Django's
default ``DATA_UPLOAD_MAX_MEMORY_SIZE`` of 2.5 MB: raise it to at least
``5 * 1024 * 1024``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.urls import URLPattern, path

from ..protocol import DEFAULT_SERVE_PATH
from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler, Streaming

View = (
    Callable[[HttpRequest], HttpResponseBase] | Callable[[HttpRequest], Awaitable[HttpResponseBase]]
)


def serve(
    client: Stepwise,
    functions: Sequence[Function],
    *,
    async_mode: bool = False,
    serve_path: str = DEFAULT_SERVE_PATH,
    serve_origin: str | None = None,
    streaming: Streaming | bool | None = None,
) -> URLPattern:
    """A URL pattern for the serve endpoint (GET, PUT, POST at ``serve_path``)."""
    handler = ServeHandler(
        client,
        functions,
        framework="django",
        serve_origin=serve_origin,
        streaming=streaming,
        can_stream=True,
    )
    view: View

    if async_mode:

        async def serve_async(request: HttpRequest) -> HttpResponseBase:
            result = await handler.handle(*_request(request))
            if result.stream is not None:
                return StreamingHttpResponse(
                    result.stream, status=result.status, headers=result.headers
                )
            return HttpResponse(result.body, status=result.status, headers=result.headers)

        view = serve_async
    else:

        def serve_sync(request: HttpRequest) -> HttpResponseBase:
            result = handler.handle_sync(*_request(request))
            if result.stream is not None:
                chunks = handler.sync_stream(result.stream)
                return StreamingHttpResponse(chunks, status=result.status, headers=result.headers)
            return HttpResponse(result.body, status=result.status, headers=result.headers)

        view = serve_sync
    # Calls carry no CSRF token: in production they are signed instead. Marked on the view
    # itself (what ``csrf_exempt`` does), so an async view stays a coroutine function.
    view.csrf_exempt = True  # type: ignore[union-attr]
    return path(serve_path.lstrip("/"), view, name="stepwise")


def _request(request: HttpRequest) -> tuple[str, str, dict[str, str], bytes, dict[str, str]]:
    return (
        request.method or "GET",
        request.build_absolute_uri(),
        dict(request.headers),
        request.body,
        request.GET.dict(),
    )
