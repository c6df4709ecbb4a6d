"""``GET /v1/runs``: runs filtered by status, function, app, creation time and triggering
event, newest first, in pages chained by an opaque cursor; with ``q``, only those a CEL
expression over their event and output matches, found by a bounded scan (``run_search``)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ...protocol import is_ulid
from ...protocol.ids import encode_ulid
from .. import expr
from ..store.records import RunFilter, RunHold, RunRecord, RunStatus
from .auth import require_api_key
from .rest import MAX_LIMIT, run_json, wrap
from .run_search import MAX_EXPRESSION, search_runs
from .state import ServerState

DEFAULT_LIMIT = 20
# Bounds the SQL a request can build (one placeholder per value).
MAX_FUNCTIONS = 50
MAX_TEXT = 512
# A cursor: 24 bytes in base64url (see ``encode_cursor``).
CURSOR_PATTERN = "^[A-Za-z0-9_-]{32}$"
CURSOR = re.compile(CURSOR_PATTERN)
_CROCKFORD_TO_BASE32 = str.maketrans(
    "0123456789ABCDEFGHJKMNPQRSTVWXYZ", "0123456789abcdefghijklmnopqrstuv"
)
_ENTROPY = (1 << 80) - 1


def _rfc3339(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("must be an RFC 3339 time, such as 2026-01-31T12:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.timestamp()
    except (OverflowError, ValueError):
        raise ValueError("is outside the range of times a run can have") from None
    return parsed


def _event_id(value: Any) -> str:
    if not isinstance(value, str) or not is_ulid(value):
        raise ValueError("must be an event's internal id (a ULID)")
    return value.upper()


Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
Time = Annotated[datetime, BeforeValidator(_rfc3339)]
EventId = Annotated[str, BeforeValidator(_event_id)]
Expression = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXPRESSION)]


class RunsQuery(BaseModel):
    """The query string of ``GET /v1/runs``; ``status`` and ``function`` may repeat."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A run's status, or what a Running run holds (Sleeping, Waiting); repeated, any matches.
    status: list[RunStatus | RunHold] = Field(
        default_factory=list, max_length=len(RunStatus) + len(RunHold)
    )
    function: list[Text] = Field(default_factory=list, max_length=MAX_FUNCTIONS)
    app: Text | None = None
    created_from: Time | None = Field(default=None, alias="from")
    until: Time | None = None
    event_id: EventId | None = None
    event_name: Text | None = None
    q: Expression | None = None
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: Text | None = None

    def run_filter(self) -> RunFilter:
        return RunFilter(
            statuses=tuple(dict.fromkeys(s for s in self.status if isinstance(s, RunStatus))),
            holds=tuple(dict.fromkeys(s for s in self.status if isinstance(s, RunHold))),
            function_slugs=tuple(dict.fromkeys(self.function)),
            app_name=self.app,
            created_from=_ms(self.created_from),
            created_until=_ms(self.until),
            event_id=self.event_id,
            event_name=self.event_name,
        )


REPEATABLE = frozenset({"status", "function"})


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def encode_cursor(run: RunRecord) -> str:
    """The run's (created_at, id) as 24 bytes: 8 of signed milliseconds, 16 of the ULID.

    Fixed-size, so that every string of 32 base64url characters is a cursor, and the
    document can say exactly which strings are (a page after any position is valid).
    """
    ulid = int(run.id.upper().translate(_CROCKFORD_TO_BASE32), 32)
    raw = run.created_at.to_bytes(8, "big", signed=True) + ulid.to_bytes(16, "big")
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (created_at, id) a page continues after, or a 400 for what is not a cursor."""
    if CURSOR.fullmatch(cursor) is None:
        raise ApiError(
            400,
            "invalid_parameter",
            "query parameter 'cursor' must be a metadata.next_cursor from a previous page",
            parameter="cursor",
        )
    raw = base64.urlsafe_b64decode(cursor)
    ulid = int.from_bytes(raw[8:], "big")
    run_id = encode_ulid(ulid >> 80, (ulid & _ENTROPY).to_bytes(10, "big"))
    return int.from_bytes(raw[:8], "big", signed=True), run_id


def parse_query(request: Request) -> RunsQuery:
    params = request.query_params
    values: dict[str, Any] = {}
    for name in params:
        if name in REPEATABLE:
            values[name] = params.getlist(name)
            continue
        given = params.getlist(name)
        if len(given) > 1:
            raise ApiError(
                400,
                "invalid_parameter",
                f"query parameter {name!r} may be given once",
                parameter=name,
            )
        values[name] = given[0]
    try:
        return RunsQuery.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else "query"
        if error["type"] == "extra_forbidden":
            message = f"unknown query parameter {name!r}"
        else:
            message = f"query parameter {name!r}: {error['msg']}"
        raise ApiError(400, "invalid_parameter", message, parameter=name) from None


async def list_runs(request: Request) -> Response:
    await require_api_key(request)
    state: ServerState = request.app.state.stepwise
    query = parse_query(request)
    after = decode_cursor(query.cursor) if query.cursor is not None else None
    store = state.engine.store
    if query.q is not None:
        try:
            found = await search_runs(
                store, query.run_filter(), query.q, limit=query.limit, after=after
            )
        except expr.ExpressionError as exc:
            raise ApiError(
                400, "invalid_parameter", f"query parameter 'q': {exc}", parameter="q"
            ) from None
        resume = found.resume_after
        search_cursor = encode_cursor(resume) if resume is not None else None
        response = wrap(
            [run_json(r) for r in found.runs],
            next_cursor=search_cursor,
            scanned=found.scanned,
            stopped_early=found.stopped_early,
        )
        if search_cursor is not None:
            response.headers["x-next-cursor"] = search_cursor
        return response
    # One more than asked tells whether a next page exists without a second query.
    runs = await store.list_runs(query.run_filter(), limit=query.limit + 1, after=after)
    page = runs[: query.limit]
    next_cursor = encode_cursor(page[-1]) if len(runs) > query.limit else None
    response = wrap([run_json(r) for r in page], next_cursor=next_cursor)
    if next_cursor is not None:
        response.headers["x-next-cursor"] = next_cursor
    return response
