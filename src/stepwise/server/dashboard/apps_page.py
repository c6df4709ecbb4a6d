"""The dashboard's ``/apps`` page: every app with how its last sync went, a Resync button
each, and a form that adds an app by its URL. It shows what ``GET /v1/apps`` and
``GET /v1/app-syncs`` answer, and its buttons call ``POST /v1/apps[/{name}/resync]``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..api.apps import app_json, sync_json
from ..api.state import ServerState
from .pages import page, render


@page
async def apps(request: Request) -> Response:
    state: ServerState = request.app.state.stepwise
    store = state.engine.store
    syncs = {s.url: s for s in await store.list_app_syncs()}
    rows = [app_json(state, app, syncs) for app in await store.list_apps()]
    # URLs no app has registered from (yet): an app added by URL that has never synced.
    synced_urls = {row["url"] for row in rows}
    pending = [sync_json(s) for url, s in syncs.items() if url not in synced_urls]
    return render(request, "apps.html", rows=rows, pending=pending)
