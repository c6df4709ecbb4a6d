"""Builds the server's ASGI application from its routers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ApiError
from ..protocol import headers as h
from . import dashboard
from .api import (
    api_docs,
    apps,
    checkpoint,
    control,
    endpoints,
    events,
    functions,
    live,
    metadata,
    metrics,
    realtime,
    register,
    rest,
    run_listing,
)
from .api.responses import JSONResponse, error_response
from .api.state import ServerState
from .store.errors import DatabaseUnavailable

log = logging.getLogger("stepwise.api")


class ServerKindHeader:
    """Every response says which kind of server answered (SDKs read it to detect dev mode)."""

    def __init__(self, app: ASGIApp, kind: str) -> None:
        self.app = app
        self.header = (h.SERVER_KIND.encode(), kind.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    # The exception's headers carry the ``Allow`` list a 405 must send (RFC 9110).
    return JSONResponse(
        {"error": exc.detail, "code": code, "status": exc.status_code},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DatabaseUnavailable)
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    if exc.in_doubt:
        message = (
            "the database connection was lost while the request was being committed: it may or"
            " may not have been stored; retry it (events with the same id are deduplicated)"
        )
    else:
        message = "the database is unavailable; nothing was stored, retry the request later"
    return JSONResponse(
        {"error": message, "code": "database_unavailable", "status": 503},
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"error": "internal server error", "code": "internal", "status": 500}, status_code=500
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def _by_method(path: str, **handlers: Endpoint) -> Route:
    """One route for several methods on one path, so that a 405 on it lists them all in
    ``Allow`` (separate routes would each answer with their own method only)."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, endpoint, methods=list(handlers))


def build_app(state: ServerState) -> Any:
    routes: list[BaseRoute] = [
        Route("/e/{key}", events.send_events, methods=["POST"]),
        Route("/fn/register", register.register, methods=["POST"]),
        Route("/health", rest.health, methods=["GET"]),
        Route("/metrics", metrics.metrics, methods=["GET"]),
        Route("/v1/live", live.live, methods=["GET"]),
        Route("/dev", rest.dev_info, methods=["GET"]),
        Route("/v1/events", rest.list_events, methods=["GET"]),
        Route("/v1/events/{event_id}", rest.get_event, methods=["GET"]),
        Route("/v1/events/{event_id}/runs", rest.event_runs, methods=["GET"]),
        Route("/v1/events/{event_id}/reasons", rest.event_reasons, methods=["GET"]),
        Route("/v1/runs", run_listing.list_runs, methods=["GET"]),
        _by_method("/v1/runs/{run_id}", GET=rest.get_run, DELETE=control.cancel_run),
        Route("/v1/runs/{run_id}/rerun", control.rerun_run, methods=["POST"]),
        _by_method(
            "/v1/cancellations",
            GET=control.list_cancellations,
            POST=control.create_cancellation,
        ),
        Route("/v1/cancellations/preview", control.preview_cancellation, methods=["POST"]),
        Route(
            "/v1/cancellations/{cancellation_id}", control.delete_cancellation, methods=["DELETE"]
        ),
        Route("/v1/signals", control.send_signal, methods=["POST"]),
        Route("/v1/checkpoint", endpoints.start, methods=["POST"]),
        Route("/v1/checkpoint/{run_id}/async", checkpoint.save_async, methods=["POST"]),
        Route("/v1/checkpoint/{run_id}/steps", endpoints.steps, methods=["POST"]),
        Route("/v1/checkpoint/{run_id}/output", endpoints.output, methods=["GET"]),
        Route("/v1/http/runs/{run_id}/output", endpoints.output, methods=["GET"]),
        Route("/v1/realtime/publish/tee", realtime.tee, methods=["POST"]),
        Route("/v1/realtime/sse", realtime.sse, methods=["GET"]),
        Route("/v1/runs/{run_id}/history", rest.run_history, methods=["GET"]),
        Route("/v1/runs/{run_id}/metadata", metadata.update_metadata, methods=["POST"]),
        _by_method("/v1/apps", GET=apps.list_apps, POST=apps.add_app),
        Route("/v1/apps/{app_name}", apps.get_app, methods=["GET"]),
        Route("/v1/apps/{app_name}/resync", apps.resync_app, methods=["POST"]),
        Route("/v1/app-syncs", apps.list_app_syncs, methods=["GET"]),
        Route("/v1/functions/{slug}/metrics", functions.function_metrics, methods=["GET"]),
        Route("/v1/functions/{slug}/invoke", functions.invoke_function, methods=["POST"]),
        Route("/v1/apps/{app_name}/functions", rest.app_functions, methods=["GET"]),
        Route("/v0/runs/{run_id}/batch", rest.run_batch, methods=["GET"]),
        Route("/v0/runs/{run_id}/actions", rest.run_actions, methods=["GET"]),
        Route("/openapi.json", api_docs.openapi_json, methods=["GET"]),
        Route("/docs", api_docs.docs_page, methods=["GET"]),
        api_docs.assets(),
    ]
    routes += dashboard.routes()
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error,
            DatabaseUnavailable: _database_unavailable,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.stepwise = state
    return ServerKindHeader(app, state.config.server_kind)
