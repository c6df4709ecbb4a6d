"""``POST /v1/checkpoint/{run_id}/async``: the JS SDK saves steps while its call is open.

The body is the SDK's, so it is checked here: the envelope by a pydantic model (the SDK
sends more than we read, which is ignored), each step by the protocol's op parser.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ...protocol import GeneratorOp, OpParseError, is_ulid
from ..engine.checkpoint import CheckpointRejected
from ..engine.executor import MAX_RUN_STATE
from ..store.records import CheckpointOutcome
from .auth import require_signing_key
from .responses import JSONResponse, read_json
from .state import ServerState

# Steps are buffered by the SDK, so a body holds several outputs; none can hold more than a
# run may store.
MAX_CHECKPOINT_BYTES = MAX_RUN_STATE + 1024 * 1024


class AsyncCheckpointBody(BaseModel):
    """What the JS SDK posts. ``request_id``, ``request_started_at`` and ``ts`` are read but
    not needed: every checkpoint is checked against its dispatch, whatever its age, and the
    run comes from the path. ``fn_id`` only labels the steps counted in the metrics."""

    model_config = ConfigDict(extra="ignore")

    run_id: str | None = None
    fn_id: str | None = None
    qi_id: str | None = None
    request_id: str | None = None
    generation_id: int | None = None
    request_started_at: int | None = None
    steps: list[dict[str, Any]] | None = None
    ts: int | None = None


def invalid_checkpoint(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return ApiError(400, "invalid_checkpoint", f"{where}: {first['msg']}")


async def save_async(request: Request) -> Response:
    await require_signing_key(request)
    state: ServerState = request.app.state.stepwise
    run_id = str(request.path_params["run_id"])
    if not is_ulid(run_id):
        raise ApiError(400, "invalid_id", f"{run_id!r} is not a valid run id (a ULID)")
    run_id = run_id.upper()
    raw = await read_json(request, max_bytes=MAX_CHECKPOINT_BYTES)
    try:
        body = AsyncCheckpointBody.model_validate(raw)
    except ValidationError as exc:
        raise invalid_checkpoint(exc) from None
    if body.run_id is not None and body.run_id.upper() != run_id:
        raise ApiError(
            400, "run_id_mismatch", f"the body names run {body.run_id!r}, the path {run_id!r}"
        )
    try:
        ops = [GeneratorOp.from_wire(step) for step in body.steps or []]
    except OpParseError as exc:
        raise ApiError(400, "invalid_checkpoint", f"steps: {exc}") from None
    length = request.headers.get("content-length", "")
    try:
        outcome = await state.engine.checkpoint(
            run_id,
            ops,
            queue_item=body.qi_id,
            generation=body.generation_id,
            body_bytes=int(length) if length.isdigit() else MAX_CHECKPOINT_BYTES,
            function_id=body.fn_id,
        )
    except CheckpointRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message, run_id=run_id) from None
    if outcome is CheckpointOutcome.NO_RUN:
        raise ApiError(404, "run_not_found", "run not found", run_id=run_id)
    if outcome is CheckpointOutcome.RUN_ENDED:
        raise ApiError(409, "run_ended", "the run already ended", run_id=run_id)
    if outcome is CheckpointOutcome.STALE:
        # The SDK stops on a 409: the server no longer waits for the call it is running in.
        raise ApiError(
            409,
            "stale_dispatch",
            "the call this checkpoint comes from is no longer current:"
            " its job was retried, dispatched again or answered",
            run_id=run_id,
        )
    return JSONResponse({"run_id": run_id, "saved": True})
