"""One function: its recent runs' metrics, and invoking it.

``GET /v1/functions/{slug}/metrics``, ``POST /v1/functions/{slug}/invoke``. ``slug`` is
the function's full id as synced (``<app>-<fn>``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ..engine.endpoints import is_endpoint
from ..engine.executor import now_ms
from ..engine.registry import FunctionSpec
from ..store.records import FunctionStats, RunStatus, RunWindow
from .auth import require_api_key
from .responses import read_optional_body
from .rest import iso, run_json, wrap
from .state import ServerState


async def _function(request: Request) -> tuple[ServerState, FunctionSpec]:
    await require_api_key(request)
    state: ServerState = request.app.state.stepwise
    slug = str(request.path_params["slug"])
    spec = state.engine.registry.get(slug)
    if spec is None:
        raise ApiError(
            404, "function_not_found", f"no function with id {slug!r} is synced (its full id)"
        )
    return state, spec


def window_json(window: RunWindow) -> dict[str, Any]:
    return {
        "from": iso(window.start),
        "until": iso(window.end),
        "bucket_seconds": window.bucket_ms // 1000,
        "buckets": [
            {
                "start": iso(b.start),
                # Every status, so a client can stack them without filling gaps.
                "counts": {s.value: b.counts.get(s, 0) for s in RunStatus},
            }
            for b in window.buckets
        ],
        "runs": sum(n for b in window.buckets for n in b.counts.values()),
        "duration_ms": {
            "ended": window.ended,
            "sampled": window.sampled,
            "p50": window.p50_ms,
            "p95": window.p95_ms,
        },
    }


def stats_json(slug: str, stats: FunctionStats) -> dict[str, Any]:
    return {
        "function_id": slug,
        "last_hour": window_json(stats.last_hour),
        "last_day": window_json(stats.last_day),
    }


async def function_metrics(request: Request) -> Response:
    state, spec = await _function(request)
    stats = await state.engine.store.function_stats(spec.slug, now_ms())
    return wrap(stats_json(spec.slug, stats))


class InvokeBody(BaseModel):
    """``POST /v1/functions/{slug}/invoke``: the data of the event the run receives."""

    model_config = ConfigDict(extra="forbid", strict=True)

    data: dict[str, Any] = {}


async def invoke_function(request: Request) -> Response:
    state, spec = await _function(request)
    if is_endpoint(spec):
        raise ApiError(
            409,
            "endpoint_function",
            f"{spec.slug!r} is a durable endpoint: only a request to its handler starts a run",
        )
    # The data becomes an event's: the same cap as one event.
    body = await read_optional_body(
        request,
        InvokeBody,
        max_bytes=state.config.max_event_bytes,
        code="invalid_invoke",
        shape="the body is empty, or an object with an optional 'data': a JSON object,"
        " the invoked event's data",
    )
    invocation = await state.engine.invoke(spec.slug, body.data)
    if invocation is None:  # unsynced since the lookup
        raise ApiError(404, "function_not_found", f"no function with id {spec.slug!r} is synced")
    if invocation.run_id is None:
        response = wrap({"event_id": invocation.event_id, "run_id": None, "held": invocation.held})
        response.status_code = 202
        return response
    run = await state.engine.store.get_run(invocation.run_id)
    assert run is not None  # just committed; retention never deletes an active run
    response = wrap(run_json(run))
    response.status_code = 201
    response.headers["location"] = f"/v1/runs/{run.id}"
    return response
