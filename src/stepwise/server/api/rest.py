"""REST v1 (``/v1/events``, ``/v1/runs``), the SDK's state API (``/v0/runs``), health and ``/dev``."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ... import __version__
from ...errors import ApiError
from ...protocol import is_ulid
from ..engine.event_fates import why_no_run
from ..engine.registry import FunctionSpec
from ..store.records import EventRecord, HistoryKind, RunRecord
from .auth import require_api_key
from .responses import JSONResponse
from .state import ServerState

MAX_LIMIT = 100
# A copy number in a cursor: small enough for any database integer.
_COPY_NUMBER = re.compile(r"[0-9]{1,9}")


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def wrap(data: Any, **metadata: Any) -> JSONResponse:
    """The v1 envelope; ``metadata`` adds to the fields every response has (a next cursor)."""
    return JSONResponse(
        {
            "data": data,
            "metadata": {
                "fetched_at": iso(int(time.time() * 1000)),
                "cached_until": None,
                **metadata,
            },
        }
    )


def event_json(e: EventRecord) -> dict[str, Any]:
    out = {
        "internal_id": e.internal_id,
        "id": e.id,
        "name": e.name,
        "data": e.data,
        "user": e.user,
        "ts": e.ts,
        "v": e.v,
        "received_at": iso(e.received_at),
    }
    if e.meta is not None:
        out["meta"] = e.meta
    return out


def run_json(r: RunRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "run_id": r.id,
        "run_started_at": iso(r.started_at or r.created_at),
        "function_id": r.function_id,
        "function_slug": r.function_slug,
        "function_version": 1,
        "environment_id": "00000000-0000-4000-b000-000000000000",
        "event_id": r.event_ids[0] if r.event_ids else None,
        "batch_id": None,
        "original_run_id": r.original_run_id,
        "cron": r.cron,
        "status": r.status.value,
        "ended_at": iso(r.ended_at),
    }
    if r.status.terminal:
        out["output"] = r.output
    if r.skip_reason is not None:
        out["skip_reason"] = r.skip_reason
    return out


async def _state(request: Request) -> ServerState:
    await require_api_key(request)
    state: ServerState = request.app.state.stepwise
    return state


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"query parameter {name!r} must be an integer"
        ) from None


def _time_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"query parameter {name!r} must be an RFC 3339 time"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _ulid_param(request: Request, name: str, what: str) -> str:
    value = str(request.path_params[name])
    if not is_ulid(value):
        raise ApiError(400, "invalid_id", f"{value!r} is not a valid {what} id (a ULID)")
    return value.upper()


def _event_cursor(request: Request) -> tuple[str, int] | None:
    """Where a page of events starts: after ``<internal id>`` or ``<internal id>.<copy>``.

    Copies of one event share its internal id, so a page may end between two of them;
    the cursor then names the copy too. A bare id (copy 0) reads as it always did.
    """
    value = request.query_params.get("cursor")
    if value is None:
        return None
    internal_id, dot, copy = value.partition(".")
    if not is_ulid(internal_id) or (dot and not _COPY_NUMBER.fullmatch(copy)):
        raise ApiError(
            400, "invalid_parameter", "cursor must be a value from an x-next-cursor header"
        )
    return internal_id.upper(), int(copy) if dot else 0


def _next_cursor(event: EventRecord) -> str:
    return event.internal_id if event.copy == 0 else f"{event.internal_id}.{event.copy}"


async def list_events(request: Request) -> Response:
    state = await _state(request)
    limit = _int_param(request, "limit")
    limit = 20 if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "invalid_parameter", f"limit must be between 1 and {MAX_LIMIT}")
    events = await state.engine.store.list_events(
        limit=limit,
        cursor=_event_cursor(request),
        name=request.query_params.get("name") or None,
        received_after=_time_param(request, "received_after"),
        received_before=_time_param(request, "received_before"),
    )
    response = wrap([event_json(e) for e in events])
    if len(events) == limit:
        response.headers["x-next-cursor"] = _next_cursor(events[-1])
    return response


async def get_event(request: Request) -> Response:
    state = await _state(request)
    event = await state.engine.store.get_event(_ulid_param(request, "event_id", "event"))
    if event is None:
        raise ApiError(404, "event_not_found", "event not found")
    return wrap(event_json(event))


async def event_runs(request: Request) -> Response:
    state = await _state(request)
    event_id = _ulid_param(request, "event_id", "event")
    if await state.engine.store.get_event(event_id) is None:
        raise ApiError(404, "event_not_found", "event not found")
    runs = await state.engine.store.runs_for_event(event_id)
    return wrap([run_json(r) for r in runs])


async def event_reasons(request: Request) -> Response:
    """Why an event started no run, one reason per function ([] if it started any)."""
    state = await _state(request)
    event_id = _ulid_param(request, "event_id", "event")
    store = state.engine.store
    event = await store.get_event(event_id)
    if event is None:
        raise ApiError(404, "event_not_found", "event not found")
    if await store.runs_for_event(event_id):
        return wrap([])
    reasons = await why_no_run(store, state.engine.registry, event)
    return wrap([{"function": r.function, "reason": r.text, "run_id": r.run_id} for r in reasons])


async def get_run(request: Request) -> Response:
    state = await _state(request)
    run = await state.engine.store.get_run(_ulid_param(request, "run_id", "run"))
    if run is None:
        raise ApiError(404, "run_not_found", "run not found")
    return wrap(run_json(run))


async def run_history(request: Request) -> Response:
    """What happened in a run, oldest first; completed steps carry their output."""
    state = await _state(request)
    run_id = _ulid_param(request, "run_id", "run")
    store = state.engine.store
    if await store.get_run(run_id) is None:
        raise ApiError(404, "run_not_found", "run not found")
    memos = dict(await store.list_steps(run_id))
    entries = []
    for entry in await store.run_history(run_id):
        item: dict[str, Any] = {
            "kind": entry.kind.value,
            "at": iso(entry.at),
            "step_id": entry.step_id,
            "name": entry.name,
            "attempt": entry.attempt,
        }
        if entry.data is not None:
            item.update(entry.data)
        if entry.kind is HistoryKind.STEP_COMPLETED and entry.step_id in memos:
            memo = memos[entry.step_id]
            item["output"] = (
                memo.get("data") if isinstance(memo, dict) and set(memo) == {"data"} else memo
            )
        entries.append(item)
    return wrap(entries)


async def run_batch(request: Request) -> Response:
    state = await _state(request)
    run_state = await state.engine.store.load_run_state(_ulid_param(request, "run_id", "run"))
    if run_state is None:
        raise ApiError(404, "run_not_found", "run not found")
    return JSONResponse([e.to_wire() for e in run_state.events])


async def run_actions(request: Request) -> Response:
    state = await _state(request)
    run_state = await state.engine.store.load_run_state(_ulid_param(request, "run_id", "run"))
    if run_state is None:
        raise ApiError(404, "run_not_found", "run not found")
    return JSONResponse({s.step_id: s.memo for s in run_state.steps})


def function_json(spec: FunctionSpec) -> dict[str, Any]:
    config = spec.record.config
    return {
        "id": spec.id,
        "slug": spec.slug,
        "name": spec.record.name,
        "app_id": spec.record.app_id,
        "triggers": config.get("triggers", []),
        "url": spec.url,
        "max_attempts": spec.max_attempts,
        "created_at": iso(spec.record.created_at),
    }


async def app_functions(request: Request) -> Response:
    state = await _state(request)
    name = str(request.path_params["app_name"])
    app = next((a for a in await state.engine.store.list_apps() if a.name == name), None)
    if app is None:
        raise ApiError(404, "app_not_found", f"no app named {name!r} has synced")
    return wrap(
        [function_json(s) for s in state.engine.registry.all() if s.record.app_id == app.id]
    )


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def dev_function_json(spec: FunctionSpec) -> dict[str, Any]:
    """A synced function as the reference's dev server lists it in ``GET /dev``.

    The official JS SDK's test helpers read this shape: the triggers as synced, and the
    one step with the URL the server calls.
    """
    config = spec.record.config
    step = (config.get("steps") or {}).get("step") or {}
    return {
        "id": spec.slug,
        "slug": spec.slug,
        "name": spec.record.name,
        "triggers": config.get("triggers") or [],
        "steps": [
            {"id": step.get("id") or "step", "name": step.get("name") or "step", "uri": spec.url}
        ],
    }


async def dev_info(request: Request) -> Response:
    """What the dev server runs; the reference's shape. Not served in production."""
    state: ServerState = request.app.state.stepwise
    config = state.config
    if not config.dev:
        raise ApiError(404, "not_found", "not found")
    return JSONResponse(
        {
            "version": __version__,
            "authed": False,
            "startOpts": {
                "urls": list(config.sdk_urls),
                "autodiscover": config.discovery,
                "poll": config.poll,
                "poll_interval": config.poll_interval_s,
                "retry_interval": config.retry_interval_s or 0,
                "queue_workers": config.queue_workers,
                "require_keys": False,
                "persist": True,
                "max_event_size": config.max_event_bytes,
            },
            "functions": [dev_function_json(spec) for spec in state.engine.registry.all()],
            "handlers": [],
            "isSingleNodeService": True,
            "isMissingSigningKey": False,
            "isMissingEventKeys": False,
            "features": {},
        }
    )
