"""``POST /v1/runs/{run_id}/metadata``: metadata on a run or one of its steps.

The JS SDK 4.x calls it for metadata and scores that cannot ride on a step's op (another
run, a step that is not running, a run that ended). The target's shape gives the scope:
no ``step_id`` is the run; a ``step_id`` is that step (``step_index`` for its n-th use),
with ``step_attempt`` and ``span_id`` one span of it (``extended_trace``). A step the run
does not have is accepted and forgotten, as Inngest does: a score for a missing step must
not fail the run that sent it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ...protocol import hash_step_id, is_ulid
from ..engine import metadata
from ..engine.executor import now_ms
from .auth import require_api_key
from .responses import read_json
from .rest import wrap
from .state import ServerState

MAX_METADATA_REQUEST_BYTES = 2 * 1024 * 1024
MAX_INDEX = 2**31 - 1  # of a step's uses and attempts


class MetadataTarget(BaseModel):
    model_config = ConfigDict(extra="ignore")

    run_id: str | None = None
    step_id: str | None = None
    step_index: int | None = Field(default=None, ge=0, le=MAX_INDEX)
    step_attempt: int | None = Field(default=None, ge=-MAX_INDEX, le=MAX_INDEX)
    span_id: str | None = None


class MetadataUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: StrictStr
    op: Literal["set", "merge"] = "set"
    values: dict[str, Any]


class MetadataBody(BaseModel):
    """What the SDK posts; each update's kind and size are checked by
    ``engine.metadata.checked`` once the run is known to exist."""

    model_config = ConfigDict(extra="ignore")

    target: MetadataTarget = MetadataTarget()
    metadata: list[MetadataUpdate] = Field(min_length=1, max_length=metadata.MAX_UPDATES)


def _scope(target: MetadataTarget) -> metadata.Scope:
    if target.step_id is None:
        if target.step_index is not None or target.step_attempt is not None or target.span_id:
            raise ApiError(
                400,
                "invalid_metadata_target",
                "step_index, step_attempt and span_id need a step_id",
            )
        return "run"
    if target.step_attempt is not None and target.span_id:
        return "extended_trace"
    return "step"


def _hashed(step_id: str, index: int | None) -> str:
    """A step's id as its SDK hashes it: its n-th use (from 0) carries ``:n``."""
    return hash_step_id(step_id if not index else f"{step_id}:{index}")


async def update_metadata(request: Request) -> Response:
    await require_api_key(request)
    state: ServerState = request.app.state.stepwise
    run_id = str(request.path_params["run_id"])
    if not is_ulid(run_id):
        raise ApiError(400, "invalid_id", f"{run_id!r} is not a valid run id (a ULID)")
    run_id = run_id.upper()
    raw = await read_json(request, max_bytes=MAX_METADATA_REQUEST_BYTES)
    try:
        body = MetadataBody.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, "invalid_metadata", f"{where}: {first['msg']}") from None
    store = state.engine.store
    if await store.get_run(run_id) is None:
        raise ApiError(404, "run_not_found", "run not found")
    target = body.target
    if target.run_id is not None and target.run_id.upper() != run_id:
        raise ApiError(
            400,
            "run_id_mismatch",
            f"the target names run {target.run_id!r}, the path {run_id!r}",
        )
    scope = _scope(target)
    try:
        updates = [metadata.checked(u.model_dump(), scope=scope) for u in body.metadata]
    except metadata.InvalidMetadata as exc:
        code = "metadata_too_large" if exc.status == 413 else "invalid_metadata"
        raise ApiError(exc.status, code, str(exc)) from None
    step_id: str | None = None
    if target.step_id is not None:
        step_id = _hashed(target.step_id, target.step_index)
        known = {s for s, _ in await store.list_steps(run_id)}
        known |= {h.step_id for h in await store.run_history(run_id) if h.step_id}
        if step_id not in known:
            return wrap({"run_id": run_id, "written": 0})
    given = target.step_attempt
    attempt = given if given is not None and given >= 0 else None
    entries = [u.entry(now_ms(), step_id, target.step_id, attempt) for u in updates]
    if not await store.add_history(run_id, entries):
        raise ApiError(404, "run_not_found", "run not found")
    return wrap({"run_id": run_id, "written": len(entries)})
