"""``POST /e/{key}``: validate the events in order, then store them and their runs in one commit.

A bad event ends the batch: the events before it are stored, it and those after it are not.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ...protocol import events as ev
from ...protocol import headers as h
from ...protocol import sessions
from ..store.records import EventRecord
from .responses import JSONResponse, read_json
from .session import current_session, require_csrf
from .state import ServerState

# Event timestamps outside these bounds are refused (milliseconds, 1980..2100).
MIN_EVENT_TS = 315532800000
MAX_EVENT_TS = 4102444800000


class EventError(ApiError):
    def to_body(self) -> dict[str, Any]:
        return {"ids": [], **super().to_body()}


def _validate(raw: object, index: int, now: int, max_bytes: int) -> dict[str, Any]:
    where = f"event {index}"
    if not isinstance(raw, dict):
        raise EventError(400, "invalid_event", f"{where}: an event must be a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise EventError(400, "missing_event_name", f"{where}: 'name' must be a non-empty string")
    if len(name) > ev.MAX_EVENT_NAME_LENGTH:
        raise EventError(
            400,
            "event_name_too_long",
            f"{where}: 'name' is longer than {ev.MAX_EVENT_NAME_LENGTH} characters",
        )
    if name.startswith(ev.RESERVED_PREFIX):
        raise EventError(
            400, "reserved_event_name", f"{where}: event name {name!r} is reserved for internal use"
        )
    data = raw.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError(400, "invalid_event_data", f"{where}: 'data' must be an object")
    trace = ev.trace_fields(data.get("_inngest"))
    data = {k: v for k, v in data.items() if k != "_inngest"}
    if trace:
        data["_inngest"] = trace
    user = raw.get("user")
    if user is None:
        user = {}
    if not isinstance(user, dict):
        raise EventError(400, "invalid_event_user", f"{where}: 'user' must be an object")
    event_id = raw.get("id")
    if event_id is not None and not isinstance(event_id, str):
        raise EventError(400, "invalid_event_id", f"{where}: 'id' must be a string")
    ts = raw.get("ts")
    if isinstance(ts, bool) or (ts is not None and not isinstance(ts, int | float)):
        raise EventError(400, "invalid_event_ts", f"{where}: 'ts' must be a number of milliseconds")
    if ts is None or ts == 0:
        ts = now
    if not isinstance(ts, int | float):
        raise EventError(400, "invalid_event_ts", f"{where}: 'ts' must be a number of milliseconds")
    ts = int(ts)
    if not MIN_EVENT_TS <= ts <= MAX_EVENT_TS:
        raise EventError(
            400, "invalid_event_ts", f"{where}: 'ts' must be milliseconds between 1980 and 2100"
        )
    v = raw.get("v")
    if v is not None and not isinstance(v, str):
        raise EventError(400, "invalid_event_version", f"{where}: 'v' must be a string")
    # PostgreSQL cannot store a NUL character in text; refused on every backend alike.
    for field, text, code in (
        ("name", name, "invalid_event_name"),
        ("id", event_id, "invalid_event_id"),
        ("v", v, "invalid_event_version"),
    ):
        if text is not None and "\x00" in text:
            raise EventError(400, code, f"{where}: '{field}' must not contain a NUL character")
    try:
        meta = sessions.resolve_meta(raw.get("meta"))
    except sessions.SessionError as exc:
        raise EventError(400, "invalid_event_meta", f"{where}: {exc}") from None
    event = {"name": name, "data": data, "user": user, "id": event_id or None, "ts": ts, "v": v}
    if meta is not None:
        event["meta"] = meta
    size = len(orjson.dumps(event))
    if size > max_bytes:
        raise EventError(
            413,
            "event_too_large",
            f"{where}: {size} bytes is over the server's limit of {max_bytes} bytes per event",
        )
    return event


def event_key_accepted(key: str, accepted: tuple[str, ...]) -> bool:
    """True if ``key`` is one of ``accepted``.

    Each comparison takes the same time wherever the strings differ, and every key is
    compared, so the answer's timing tells a guesser nothing about any key.
    """
    # Bytes, not str: compare_digest refuses non-ASCII text, and a URL may carry any.
    given = key.encode("utf-8", "surrogatepass")
    found = False
    for candidate in accepted:
        found |= hmac.compare_digest(given, candidate.encode("utf-8", "surrogatepass"))
    return found


async def send_events(request: Request) -> Response:
    state: ServerState = request.app.state.stepwise
    config = state.config
    key = request.path_params.get("key", "")
    if config.event_keys and not event_key_accepted(key, config.event_keys):
        # The dashboard's send form: a logged-in person stands in for an event key, so no
        # event key is ever put in a page. The session must come with its CSRF token.
        session = await current_session(request)
        if session is None:
            raise EventError(401, "event_key_not_found", "Event key not found")
        try:
            require_csrf(request, session)
        except ApiError as exc:
            raise EventError(exc.status, exc.code, exc.message) from exc
    try:
        body = await read_json(request, max_bytes=config.max_event_request_bytes)
    except ApiError as exc:
        raise EventError(exc.status, exc.code, exc.message) from exc
    items = body if isinstance(body, list) else [body]
    if len(items) > config.max_events_per_request:
        raise EventError(
            413,
            "too_many_events",
            f"{len(items)} events is over the limit of {config.max_events_per_request} per request",
        )
    now = int(time.time() * 1000)
    valid: list[dict[str, Any]] = []
    refused: EventError | None = None
    for index, item in enumerate(items):
        try:
            valid.append(_validate(item, index, now, config.max_event_bytes))
        except EventError as exc:
            refused = exc
            break
    ids = state.engine.new_event_ids(request.headers.get(h.EVENT_ID_SEED), len(valid))
    records = [
        EventRecord(
            internal_id=internal,
            id=e["id"] or internal,
            name=e["name"],
            data=e["data"],
            user=e["user"],
            ts=e["ts"],
            v=e["v"],
            received_at=now,
            meta=e.get("meta"),
        )
        for internal, e in zip(ids, valid, strict=True)
    ]
    if records:
        await state.engine.ingest(records)
    if refused is not None:
        # As the reference does, the events before the first bad one are kept (and run);
        # the answer names them, so a client can tell what was taken from what was not.
        raise EventError(refused.status, refused.code, refused.message, ids=ids)
    return JSONResponse({"ids": ids, "status": 200})
