"""The further parts of a large value on a run's or an event's page (see ``values``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ...protocol import is_ulid
from ..api.state import ServerState
from ..store.records import HistoryEntry
from .pages import TEMPLATES, page, render
from .values import PART_CHARS, dumps, next_part, run_value_url, shown_memo


def _part(request: Request, value: Any, found: bool, url: str) -> Response:
    raw = request.query_params.get("part", "")
    if not found or not raw.isdigit() or int(raw) < 1:
        return render(request, "missing.html", status_code=404, what="part of a value", id=url)
    part = int(raw)
    text = dumps(value)
    if part * PART_CHARS >= len(text):
        return render(request, "missing.html", status_code=404, what="part of a value", id=url)
    html = TEMPLATES.get_template("value_part.html").render(
        text=text[part * PART_CHARS : (part + 1) * PART_CHARS],
        more=next_part(url, part + 1, len(text)),
    )
    return HTMLResponse(html)


def _entry_data(history: list[HistoryEntry], index: str, key: str | None) -> tuple[Any, bool]:
    if not index.isdigit() or int(index) >= len(history):
        return None, False
    data = history[int(index)].data
    if key is None:
        return data, data is not None
    if isinstance(data, dict) and key in data:
        return data[key], True
    return None, False


@page
async def run_value(request: Request) -> Response:
    """A further part of one of a run's values: ``of`` is ``output``, ``error``,
    ``step:<id>`` (a step's result), ``entry:<n>`` or ``input:<n>`` (of its n-th history
    entry), or ``event:<internal id>`` (a triggering event's data)."""
    state: ServerState = request.app.state.stepwise
    store = state.engine.store
    run_id = request.path_params["run_id"]
    of = request.query_params.get("of", "")
    url = run_value_url(run_id, of)
    record = await store.get_run(run_id) if is_ulid(run_id) else None
    value: Any = None
    found = False
    kind, _, rest = of.partition(":")
    if record is None:
        pass
    elif of == "output" and record.status.terminal:
        value, found = record.output, True
    elif of == "error" and record.error:
        value, found = record.error, True
    elif kind == "step":
        memos = dict(await store.list_steps(run_id))
        found = rest in memos
        value = shown_memo(memos.get(rest))
    elif kind in ("entry", "input"):
        history = await store.run_history(run_id)
        value, found = _entry_data(history, rest, "input" if kind == "input" else None)
        if kind == "entry" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "input"} or None
            found = value is not None
    elif kind == "event" and rest in record.event_ids:
        event = await store.get_event(rest)
        value, found = (event.data, True) if event is not None else (None, False)
    return _part(request, value, found, url)


@page
async def event_value(request: Request) -> Response:
    """A further part of an event's data."""
    state: ServerState = request.app.state.stepwise
    internal_id = request.path_params["internal_id"]
    event = await state.engine.store.get_event(internal_id) if is_ulid(internal_id) else None
    url = f"/events/{internal_id}/value?of=data"
    return _part(request, event.data if event else None, event is not None, url)
