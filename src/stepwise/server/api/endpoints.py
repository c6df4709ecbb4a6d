"""Durable endpoints over HTTP (see ``engine/endpoints.py``).

* ``POST /v1/checkpoint``: an SDK started a run inside an HTTP handler; the answer names
  the run's function and app and carries the tokens of its output and its stream.
* ``POST /v1/checkpoint/{run_id}/steps``: the handler's next ops.
* ``GET /v1/http/runs/{run_id}/output?token=`` (also under ``/v1/checkpoint``): the
  original client waits for the run's end and gets the handler's response, as the handler
  gave it. Only the token authorises it: the client holds no key.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ...protocol import GeneratorOp, OpParseError, is_ulid
from ...protocol import headers as h
from ..engine.endpoints import DEFAULT_RETRIES
from ..store.records import CheckpointOutcome, EndpointOutcome, RunRecord, RunStatus
from .auth import require_signing_key
from .checkpoint import MAX_CHECKPOINT_BYTES, invalid_checkpoint
from .responses import JSONResponse, read_json
from .state import ServerState

# How long ``/output`` waits for the run to end, as the reference does.
OUTPUT_WAIT_S = 300.0
# Between two looks at the run while it waits (a commit on this node wakes it sooner).
OUTPUT_POLL_S = 1.0
_HOP_BY_HOP = frozenset(
    {"connection", "content-length", "content-encoding", "transfer-encoding", "keep-alive"}
)


class NewRunBody(BaseModel):
    """What the SDK posts to start a run. ``ts`` is read but not needed."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    event: dict[str, Any]
    steps: list[dict[str, Any]] | None = None
    ts: int | None = None
    request_version: int | None = None
    retries: int | None = None


class StepsBody(BaseModel):
    """A later checkpoint. ``fn_id`` and ``app_id`` echo the start's answer: the run
    (from the path) says which they are."""

    model_config = ConfigDict(extra="ignore")

    run_id: str | None = None
    fn_id: str | None = None
    app_id: str | None = None
    steps: list[dict[str, Any]] | None = None
    ts: int | None = None


def _run_id(value: str) -> str:
    if not is_ulid(value):
        raise ApiError(400, "invalid_id", f"{value!r} is not a valid run id (a ULID)")
    return value.upper()


def _ops(steps: list[dict[str, Any]] | None) -> list[GeneratorOp]:
    try:
        return [GeneratorOp.from_wire(step) for step in steps or []]
    except OpParseError as exc:
        raise ApiError(400, "invalid_checkpoint", f"steps: {exc}") from None


def _length(request: Request) -> int:
    length = request.headers.get("content-length", "")
    return int(length) if length.isdigit() else MAX_CHECKPOINT_BYTES


async def start(request: Request) -> Response:
    await require_signing_key(request)
    state: ServerState = request.app.state.stepwise
    raw = await read_json(request, max_bytes=MAX_CHECKPOINT_BYTES)
    try:
        body = NewRunBody.model_validate(raw)
    except ValidationError as exc:
        raise invalid_checkpoint(exc) from None
    run_id = _run_id(body.run_id)
    version = 2 if body.request_version is None else body.request_version
    if version not in (-1, 1, 2):
        raise ApiError(400, "invalid_checkpoint", f"request_version {version} is not supported")
    outcome, endpoint, planned = await state.engine.start_endpoint(
        run_id=run_id,
        event=body.event,
        ops=_ops(body.steps),
        retries=DEFAULT_RETRIES if body.retries is None else body.retries,
        request_version=version,
        body_bytes=_length(request),
        sdk=request.headers.get(h.SDK, "")[:200],
    )
    if outcome is EndpointOutcome.RUN_EXISTS:
        raise ApiError(409, "run_exists", "another run has this id", run_id=run_id)
    if outcome is EndpointOutcome.FUNCTION_TAKEN:
        raise ApiError(
            409,
            "function_taken",
            f"function {planned.function.slug!r} belongs to an app that is not this endpoint's",
            run_id=run_id,
        )
    assert endpoint is not None
    run = await state.engine.store.get_run(run_id)
    assert run is not None
    return JSONResponse(
        {
            "data": {
                "fn_id": run.function_id,
                "app_id": planned.app.name,
                "run_id": run_id,
                "token": endpoint.token,
                "realtime_token": endpoint.stream_token,
            }
        }
    )


async def steps(request: Request) -> Response:
    await require_signing_key(request)
    state: ServerState = request.app.state.stepwise
    run_id = _run_id(str(request.path_params["run_id"]))
    raw = await read_json(request, max_bytes=MAX_CHECKPOINT_BYTES)
    try:
        body = StepsBody.model_validate(raw)
    except ValidationError as exc:
        raise invalid_checkpoint(exc) from None
    if body.run_id is not None and body.run_id.upper() != run_id:
        raise ApiError(
            400, "run_id_mismatch", f"the body names run {body.run_id!r}, the path {run_id!r}"
        )
    outcome = await state.engine.endpoint_steps(run_id, _ops(body.steps), _length(request))
    if outcome is CheckpointOutcome.NO_RUN:
        raise ApiError(404, "run_not_found", "run not found", run_id=run_id)
    if outcome is CheckpointOutcome.NOT_ENDPOINT:
        raise ApiError(
            409, "not_endpoint", "the run was not started by a durable endpoint", run_id=run_id
        )
    # A run that ended (cancelled, or this is a retry of the checkpoint that ended it)
    # takes nothing more, but the handler is not failed for it: it answers its client.
    saved = outcome is CheckpointOutcome.SAVED
    return JSONResponse({"run_id": run_id, "saved": saved})


async def output(request: Request) -> Response:
    state: ServerState = request.app.state.stepwise
    run_id = _run_id(str(request.path_params["run_id"]))
    token = request.query_params.get("token", "")
    store = state.engine.store
    endpoint = await store.get_endpoint(run_id)
    if endpoint is None:
        raise ApiError(404, "run_not_found", "no durable endpoint's run has this id")
    if not token or not hmac.compare_digest(token.encode(), endpoint.token.encode()):
        raise ApiError(401, "invalid_token", "the token does not grant this run's output")
    run = await _wait_for_end(state, run_id)
    if run is None:
        return JSONResponse(
            {"status": "running", "message": "run did not end within 5 minutes"},
        )
    if run.status is RunStatus.COMPLETED:
        return response_of(run.output)
    what = "failed" if run.status is RunStatus.FAILED else str(run.status.value).lower()
    return JSONResponse(
        {
            "error": f"the run {what}",
            "code": f"run_{what}",
            "status": 500,
            "run_id": run_id,
            "output": run.output,
        },
        status_code=500,
    )


async def _wait_for_end(state: ServerState, run_id: str) -> RunRecord | None:
    """The run once it ended; None if it did not within ``OUTPUT_WAIT_S``."""
    store = state.engine.store
    deadline = time.monotonic() + OUTPUT_WAIT_S
    with state.engine.live.listen() as listener:
        while True:
            run = await store.get_run(run_id)
            if run is not None and run.status.terminal:
                return run
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if await listener.next(min(OUTPUT_POLL_S, left)) is None:
                return None  # the server is stopping


def response_of(result: Any) -> Response:
    """The handler's response as the SDK checkpointed it (``{status, headers, body}``);
    any other output as JSON."""
    if not isinstance(result, dict):
        return JSONResponse(result)
    status, headers, body = result.get("status"), result.get("headers"), result.get("body")
    if not (
        isinstance(status, int)
        and 100 <= status <= 599
        and isinstance(body, str)
        and isinstance(headers, dict)
    ):
        return JSONResponse(result)
    kept = {
        str(k): str(v)
        for k, v in headers.items()
        if str(k).lower() not in _HOP_BY_HOP and "\n" not in str(v) and "\r" not in str(v)
    }
    return Response(body.encode(), status_code=status, headers=kept)
