"""The dashboard's pages: each reads the store as the REST API does and renders a template."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...protocol import is_ulid
from ..api.rest import iso
from ..api.session import Session, current_session
from ..api.state import ServerState
from ..engine.event_fates import why_no_run
from ..store.records import HistoryEntry, HistoryKind, RunRecord, RunStatus
from .values import pretty, run_value_url, shown_memo

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
EVENTS_SHOWN = 50


Page = Callable[[Request], Awaitable[Response]]


def login_redirect(request: Request) -> Response:
    """To the login page, and back here after it."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = "/login?" + urlencode({"next": target})
    if request.headers.get("hx-request"):
        # A live region refreshing after its session ended: htmx would follow a redirect
        # and swap the login page into the region; HX-Redirect makes it load the page.
        return Response(status_code=401, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def page(handler: Page) -> Page:
    """A dashboard page: open in dev mode; in production, only within a session."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        state: ServerState = request.app.state.stepwise
        if not state.config.dev:
            session = await current_session(request)
            if session is None:
                return login_redirect(request)
            request.state.session = session
        return await handler(request)

    return guarded


def _store(request: Request) -> Any:
    state: ServerState = request.app.state.stepwise
    return state.engine.store


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    # A live part of a page refreshes by fetching the whole page and keeping its ``#live``
    # element (htmx's hx-select): one way to render, and a page that stops being live (a
    # run that ended) stops refreshing by itself.
    session: Session | None = getattr(request.state, "session", None)
    html = TEMPLATES.get_template(template).render(
        context,
        active=template.removesuffix(".html"),
        # The token the page's requests send back (dashboard.js); none in dev mode.
        csrf=session.csrf if session else "",
        production=not request.app.state.stepwise.config.dev,
    )
    return HTMLResponse(html, status_code=status_code)


def shown_status(run: RunRecord, history: list[HistoryEntry] | None = None) -> str:
    """The status a person should see: Queued before a run starts; Sleeping or Waiting
    while its newest open step is a sleep or a wait (when its history is at hand)."""
    if run.status is RunStatus.SCHEDULED:
        return "Queued"
    if run.status is not RunStatus.RUNNING or not history:
        return run.status.value
    open_kind: HistoryKind | None = None
    for entry in history:
        if entry.kind in (HistoryKind.SLEEP_STARTED, HistoryKind.WAIT_STARTED):
            open_kind = entry.kind
        elif entry.kind in (HistoryKind.SLEEP_ENDED, HistoryKind.WAIT_ENDED):
            open_kind = None
    if open_kind is HistoryKind.SLEEP_STARTED:
        return "Sleeping"
    if open_kind is HistoryKind.WAIT_STARTED:
        return "Waiting"
    return "Running"


@dataclass(frozen=True, slots=True)
class Bar:
    """One row of a run's timeline: an entry, where it starts and how long it lasts (%)."""

    entry: HistoryEntry
    what: str  # the entry's kind as a person reads it ("Fetch", "Fetched 200", ...)
    at: str | None
    offset_ms: int
    left: float
    width: float
    input: dict[str, Any] | None  # the step's arguments, when its SDK sent them
    output: dict[str, Any] | None
    details: dict[str, Any] | None


# A step's row ends with the entry that closes it.
_CLOSES = {
    HistoryKind.STEP_PLANNED: (HistoryKind.STEP_COMPLETED, HistoryKind.STEP_FAILED),
    HistoryKind.SLEEP_STARTED: (HistoryKind.SLEEP_ENDED,),
    HistoryKind.WAIT_STARTED: (HistoryKind.WAIT_ENDED,),
    HistoryKind.INVOKE_STARTED: (HistoryKind.INVOKE_ENDED,),
}


def timeline(
    run: RunRecord, history: list[HistoryEntry], memos: dict[str, Any], now: int
) -> list[Bar]:
    """The waterfall: each entry placed on the run's span; one that opens a step, sleep,
    wait or invoke reaches to the entry that closes it (or to now while it is open)."""
    start = run.created_at
    end = max([run.ended_at or now, *(e.at for e in history)])
    span = max(end - start, 1)
    # Steps the server carries out itself: a step.fetch, a step.ai.infer.
    made = {
        e.step_id: "fetch" if "fetch" in e.data else "ai"
        for e in history
        if e.kind is HistoryKind.STEP_PLANNED
        and isinstance(e.data, dict)
        and ("fetch" in e.data or e.data.get("type") == "step.ai.infer")
    }
    bars = []
    for index, entry in enumerate(history):
        closes = _CLOSES.get(entry.kind, ())
        until = entry.at
        if closes:
            until = next(
                (
                    later.at
                    for later in history[index + 1 :]
                    if later.kind in closes and later.step_id == entry.step_id
                ),
                run.ended_at or now,
            )
        memo = memos.get(entry.step_id) if entry.step_id else None
        output = None
        if entry.kind is HistoryKind.STEP_COMPLETED and entry.step_id in memos:
            output = pretty(shown_memo(memo), run_value_url(run.id, f"step:{entry.step_id}"))
        data = entry.data if isinstance(entry.data, dict) else {}
        given = data.get("input")
        details = {k: v for k, v in data.items() if k != "input"} if data else entry.data
        bars.append(
            Bar(
                entry=entry,
                what=_what(entry, made.get(entry.step_id or ""), memo),
                at=iso(entry.at),
                offset_ms=entry.at - start,
                left=100 * (entry.at - start) / span,
                width=max(100 * (until - entry.at) / span, 0.5),
                input=pretty(given, run_value_url(run.id, f"input:{index}"))
                if given is not None
                else None,
                output=output,
                details=pretty(details, run_value_url(run.id, f"entry:{index}"))
                if details
                else None,
            )
        )
    return bars


def _what(entry: HistoryEntry, made: str | None, memo: Any) -> str:
    """An entry's kind in words; the steps the server makes (a ``step.fetch``, a
    ``step.ai.infer``) say so, with the HTTP status of their answer."""
    if made is None:
        return str(entry.kind.value)
    noun = "Fetch" if made == "fetch" else "AI request"
    if entry.kind is HistoryKind.STEP_PLANNED:
        return noun
    if entry.kind is HistoryKind.STEP_COMPLETED and made == "fetch" and isinstance(memo, dict):
        answer = memo.get("data")
        code = answer.get("status_code") if isinstance(answer, dict) else None
        return f"Fetched {code}" if isinstance(code, int) else "Fetched"
    return {
        HistoryKind.STEP_COMPLETED: f"{noun} answered",
        HistoryKind.STEP_ERRORED: f"{noun} errored",
        HistoryKind.STEP_FAILED: f"{noun} failed",
    }.get(entry.kind, str(entry.kind.value))


@page
async def home(request: Request) -> Response:
    return RedirectResponse("/runs", status_code=307)


@page
async def events(request: Request) -> Response:
    store = _store(request)
    rows = []
    for event in await store.list_events(
        limit=EVENTS_SHOWN,
        cursor=None,
        name=None,
        received_after=None,
        received_before=None,
    ):
        # A repeated copy started nothing: the runs of its internal id are its first copy's.
        runs = await store.runs_for_event(event.internal_id) if event.copy == 0 else []
        rows.append(
            {
                "event": event,
                "received": iso(event.received_at),
                "data": pretty(event.data, f"/events/{event.internal_id}/value?of=data"),
                "runs": [{"run": r, "status": shown_status(r)} for r in runs],
                "why": []
                if runs
                else await why_no_run(store, request.app.state.stepwise.engine.registry, event),
            }
        )
    return render(request, "events.html", rows=rows)


@page
async def run(request: Request) -> Response:
    store = _store(request)
    run_id = request.path_params["run_id"]
    record = await store.get_run(run_id) if is_ulid(run_id) else None
    if record is None:
        return render(request, "missing.html", what="run", id=run_id)
    history = await store.run_history(run_id)
    memos = dict(await store.list_steps(run_id))
    triggers = []
    for internal_id in record.event_ids:
        event = await store.get_event(internal_id)
        if event is not None:
            more = run_value_url(run_id, f"event:{internal_id}")
            triggers.append({"event": event, "data": pretty(event.data, more)})
    function = next((f for f in await store.list_functions() if f.id == record.function_id), None)
    now = int(time.time() * 1000)
    status = shown_status(record, history)
    if record.status is RunStatus.SCHEDULED:
        # Its first call may be under way: the record says Scheduled until it answers.
        work = (await store.open_work([record.id], now)).get(record.id)
        status = "Running" if work is not None and work.in_flight else status
    return render(
        request,
        "run.html",
        run=record,
        status=status,
        created=iso(record.created_at),
        started=iso(record.started_at),
        ended=iso(record.ended_at),
        duration_ms=(record.ended_at - record.created_at) if record.ended_at else None,
        output=pretty(record.output, run_value_url(run_id, "output"))
        if record.status.terminal
        else None,
        error=pretty(record.error, run_value_url(run_id, "error")) if record.error else None,
        triggers=triggers,
        function_config=pretty(function.config) if function is not None else None,
        bars=timeline(record, history, memos, now),
        live=not record.status.terminal,
    )
