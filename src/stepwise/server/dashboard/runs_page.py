"""The Runs page (``/runs``, the dashboard's home): runs newest first, filtered by a form
of GET parameters, searched with a CEL expression, paged with the REST API's cursor.

The filters are those of ``GET /v1/runs``, validated by the same model and read through
the same store operation; the search is ``api/run_search.py``, as ``GET /v1/runs?q=``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ...protocol import is_ulid
from .. import expr
from ..api.rest import iso
from ..api.run_listing import RunsQuery, decode_cursor, encode_cursor
from ..api.run_search import SCAN_LIMIT, search_runs
from ..api.state import ServerState
from ..store.records import (
    EventRecord,
    JobKind,
    OpenWork,
    PauseKind,
    RunHold,
    RunRecord,
    RunStatus,
)
from .pages import page, render, shown_status

PAGE_SIZE = 50
# The form's fields; ``event`` takes an event's internal id or its name.
FIELDS = ("function", "app", "from", "until", "event", "q")
_BUSY = frozenset({JobKind.CALL, JobKind.GATEWAY, JobKind.AI_GATEWAY})
_WAITS = frozenset({PauseKind.WAIT, PauseKind.INVOKE, PauseKind.SIGNAL})


def listed_status(run: RunRecord, work: OpenWork | None) -> str:
    """``shown_status`` for a row of the list, from what the run holds open: Running while
    a call to its app is under way (a run's first call included: the run's record says
    Scheduled until that call answers) or is due, else Sleeping while a wake-up is queued,
    else Waiting while it holds a wait, invoke or signal pause."""
    if run.status.terminal or work is None:
        return shown_status(run)
    if work.in_flight:
        return "Running"
    if run.status is RunStatus.SCHEDULED:
        return "Queued"
    if work.jobs & _BUSY:
        return "Running"
    if JobKind.WAKE in work.jobs:
        return "Sleeping"
    if work.pauses & _WAITS:
        return "Waiting"
    return "Running"


@dataclass(frozen=True, slots=True)
class Form:
    """The form as submitted, to fill it in again and to build links that keep it."""

    statuses: tuple[str, ...]
    values: dict[str, str]
    cursor: str

    def query(self, **changes: str) -> str:
        pairs = [("status", s) for s in self.statuses]
        merged = {**self.values, "cursor": self.cursor, **changes}
        pairs += [(k, v) for k, v in merged.items() if v]
        return urlencode(pairs)


def read_form(request: Request) -> Form:
    params = request.query_params
    return Form(
        statuses=tuple(s for s in params.getlist("status") if s),
        values={name: params.get(name, "").strip() for name in FIELDS},
        cursor=params.get("cursor", "").strip(),
    )


def runs_query(form: Form) -> RunsQuery:
    """The REST API's query model for the form; raises ``ValueError`` saying what is wrong."""
    values: dict[str, Any] = {"status": list(form.statuses), "limit": PAGE_SIZE}
    for name in ("function", "app", "from", "until"):
        if form.values[name]:
            values[name] = [form.values[name]] if name == "function" else form.values[name]
    event = form.values["event"]
    if event:
        values["event_id" if is_ulid(event) else "event_name"] = event
    try:
        return RunsQuery.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else "form"
        shown = {"created_from": "from", "event_id": "event", "event_name": "event"}
        raise ValueError(f"{shown.get(name, name)}: {error['msg']}") from None


def _row(run: RunRecord, work: OpenWork | None, event: EventRecord | None) -> dict[str, Any]:
    return {
        "run": run,
        "status": listed_status(run, work),
        "event": event,
        "created": iso(run.created_at),
        "ended": iso(run.ended_at),
        "duration_ms": run.ended_at - run.created_at if run.ended_at else None,
    }


@page
async def runs(request: Request) -> Response:
    state: ServerState = request.app.state.stepwise
    store = state.engine.store
    form = read_form(request)
    context: dict[str, Any] = {
        "form": form,
        "statuses": STATUS_CHOICES,
        "functions": sorted(f.slug for f in await store.list_functions()),
        "apps": sorted(a.name for a in await store.list_apps()),
        "rows": [],
        "error": None,
        "next_query": None,
        "search": None,
        "scan_limit": SCAN_LIMIT,
        "live": False,
        "self_query": form.query(),
    }
    try:
        query = runs_query(form)
        after = decode_cursor(form.cursor) if form.cursor else None
    except (ValueError, ApiError) as exc:
        context["error"] = str(exc) if isinstance(exc, ValueError) else exc.message
        return render(request, "runs.html", status_code=400, **context)
    source = form.values["q"]
    if source:
        try:
            found = await search_runs(
                store, query.run_filter(), source, limit=PAGE_SIZE, after=after
            )
        except expr.ExpressionError as exc:
            context["error"] = f"The search cannot run: {exc}"
            return render(request, "runs.html", status_code=400, **context)
        page_runs, events = found.runs, found.events
        resume = found.resume_after
        context["search"] = found
    else:
        listed = await store.list_runs(query.run_filter(), limit=PAGE_SIZE + 1, after=after)
        page_runs = listed[:PAGE_SIZE]
        resume = page_runs[-1] if len(listed) > PAGE_SIZE else None
        events = await store.events_by_id([r.event_ids[0] for r in page_runs if r.event_ids])
        # A search rescans up to SCAN_LIMIT runs: refreshing it every 2 s is not worth it.
        context["live"] = not form.cursor
    now = int(time.time() * 1000)
    work = await store.open_work([r.id for r in page_runs if not r.status.terminal], now)
    context["rows"] = [
        _row(r, work.get(r.id), events.get(r.event_ids[0]) if r.event_ids else None)
        for r in page_runs
    ]
    if resume is not None:
        context["next_query"] = form.query(cursor=encode_cursor(resume))
    return render(request, "runs.html", **context)


# The status filter's boxes, in a run's order of life: (the API's value, the name shown).
STATUS_CHOICES = [
    (RunStatus.SCHEDULED.value, "Queued"),
    (RunStatus.RUNNING.value, "Running"),
    (RunHold.SLEEPING.value, "Sleeping"),
    (RunHold.WAITING.value, "Waiting"),
    *((s.value, s.value) for s in RunStatus if s.terminal),
]
