"""Run control: cancel or rerun a run, bulk cancellations, and signals.

``DELETE /v1/runs/{id}``, ``POST /v1/runs/{id}/rerun``, ``POST|GET /v1/cancellations``,
``POST /v1/cancellations/preview``, ``DELETE /v1/cancellations/{id}``, ``POST /v1/signals``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ...protocol import is_ulid
from .. import expr
from ..engine import cancellations
from ..engine.rerun import RerunRefused
from ..store.records import CancellationRecord, RunStatus
from .auth import require_api_key
from .responses import read_json, read_optional_body
from .rest import iso, run_json, wrap
from .state import ServerState

MAX_CONTROL_BYTES = 1024 * 1024
# Run ids a preview names (the count covers them all).
PREVIEW_RUNS = 10


async def _state(request: Request) -> ServerState:
    await require_api_key(request)
    state: ServerState = request.app.state.stepwise
    return state


def _time(body: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, "invalid_cancellation", f"{name!r} is required (an RFC 3339 time)")
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_cancellation", f"{name!r} must be an RFC 3339 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_cancellation", f"{name!r} must be an RFC 3339 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def cancellation_json(record: CancellationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "app_id": record.app_id,
        "function_id": record.function_slug,
        "started_after": iso(record.started_after),
        "started_before": iso(record.started_before),
        "if": record.expression,
        "created_at": iso(record.created_at),
    }


async def cancel_run(request: Request) -> Response:
    state = await _state(request)
    run_id = str(request.path_params["run_id"])
    if not is_ulid(run_id):
        raise ApiError(400, "invalid_id", f"{run_id!r} is not a valid run id (a ULID)")
    status = await state.engine.cancel_run(run_id.upper())
    if status is None:
        raise ApiError(404, "run_not_found", "run not found")
    if status in (RunStatus.COMPLETED, RunStatus.FAILED):
        raise ApiError(409, "run_already_finished", f"the run already ended: {status.value}")
    return wrap({"run_id": run_id.upper(), "status": status.value})


class RerunBody(BaseModel):
    """``POST /v1/runs/{id}/rerun``: an empty body (or ``{}``) reruns the whole run."""

    model_config = ConfigDict(extra="forbid", strict=True)

    from_step: str | None = Field(default=None, min_length=1)


async def _rerun_body(request: Request) -> RerunBody:
    return await read_optional_body(
        request,
        RerunBody,
        max_bytes=MAX_CONTROL_BYTES,
        code="invalid_rerun",
        shape="the body is empty, or an object with an optional 'from_step': the id of a"
        " step the run completed",
    )


async def rerun_run(request: Request) -> Response:
    state = await _state(request)
    run_id = str(request.path_params["run_id"])
    if not is_ulid(run_id):
        raise ApiError(400, "invalid_id", f"{run_id!r} is not a valid run id (a ULID)")
    body = await _rerun_body(request)
    try:
        new_id = await state.engine.rerun(run_id.upper(), from_step=body.from_step)
    except RerunRefused as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    if new_id is None:
        raise ApiError(404, "run_not_found", "run not found")
    run = await state.engine.store.get_run(new_id)
    assert run is not None  # just committed; retention never deletes an active run
    response = wrap(run_json(run))
    response.status_code = 201
    response.headers["location"] = f"/v1/runs/{new_id}"
    return response


async def _cancellation_body(
    request: Request, state: ServerState
) -> tuple[str, cancellations.ProposedCancellation]:
    """The app id and window of a ``POST /v1/cancellations`` (or its preview) body."""
    body = await read_json(request, max_bytes=MAX_CONTROL_BYTES)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_cancellation", "the body must be a JSON object")
    app_id, function_id = body.get("app_id"), body.get("function_id")
    if (
        not isinstance(app_id, str)
        or not app_id
        or not isinstance(function_id, str)
        or not function_id
    ):
        raise ApiError(
            400, "invalid_cancellation", "'app_id' and 'function_id' are required strings"
        )
    # The function id may be the SDK's own id or the full "<app>-<fn>" one.
    registry = state.engine.registry
    spec = registry.get(f"{app_id}-{function_id}") or registry.get(function_id)
    if spec is None:
        raise ApiError(404, "function_not_found", f"no function {function_id!r} in app {app_id!r}")
    started_before = _time(body, "started_before", required=True)
    started_after = _time(body, "started_after", required=False)
    assert started_before is not None
    if started_after is not None and started_after > started_before:
        raise ApiError(
            400, "invalid_cancellation", "'started_after' is later than 'started_before'"
        )
    expression = body.get("if")
    if expression is not None:
        if not isinstance(expression, str):
            raise ApiError(400, "invalid_cancellation", "'if' must be a string")
        try:
            expr.check(expression)
        except expr.ExpressionError as exc:
            raise ApiError(400, "invalid_expression", str(exc)) from exc
    return app_id, cancellations.ProposedCancellation(
        function_slug=spec.slug,
        started_before=started_before,
        started_after=started_after,
        expression=expression or None,
    )


async def create_cancellation(request: Request) -> Response:
    state = await _state(request)
    app_id, window = await _cancellation_body(request, state)
    record = await state.engine.create_cancellation(
        app_id=app_id,
        function_slug=window.function_slug,
        started_before=window.started_before,
        started_after=window.started_after,
        expression=window.expression,
    )
    return wrap(cancellation_json(record))


async def preview_cancellation(request: Request) -> Response:
    """How many runs the same body would cancel if it were posted now, and the first few.

    Counted by the rule the cancelling job applies (``engine/cancellations.py``); runs that
    start or end between the preview and the cancellation change the number.
    """
    state = await _state(request)
    _, window = await _cancellation_body(request, state)
    found = await cancellations.preview(state.engine.store, window, sample=PREVIEW_RUNS)
    return wrap({"count": found.count, "runs": found.run_ids})


async def list_cancellations(request: Request) -> Response:
    state = await _state(request)
    return wrap([cancellation_json(r) for r in await state.engine.store.list_cancellations()])


async def delete_cancellation(request: Request) -> Response:
    state = await _state(request)
    cancellation_id = str(request.path_params["cancellation_id"])
    if not await state.engine.store.delete_cancellation(cancellation_id):
        raise ApiError(404, "cancellation_not_found", "cancellation not found")
    return wrap({"id": cancellation_id, "deleted": True})


async def send_signal(request: Request) -> Response:
    state = await _state(request)
    body = await read_json(request, max_bytes=MAX_CONTROL_BYTES)
    if not isinstance(body, dict) or not isinstance(body.get("signal"), str) or not body["signal"]:
        raise ApiError(
            400,
            "invalid_signal",
            "the body must be an object with a non-empty string 'signal' and any 'data'",
        )
    run_id = await state.engine.send_signal(body["signal"], body.get("data"))
    if run_id is None:
        raise ApiError(404, "signal_not_found", f"no run is waiting for signal {body['signal']!r}")
    return wrap({"run_id": run_id})
