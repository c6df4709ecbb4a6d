"""The bulk cancellations page: preview and create one, list and delete them.

The page only renders; its form and buttons call the public API from the browser
(``POST /v1/cancellations/preview``, ``POST /v1/cancellations``,
``DELETE /v1/cancellations/{id}``, in ``static/cancellations.js``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..api.control import cancellation_json
from ..api.state import ServerState
from .pages import page, render


@page
async def cancellations(request: Request) -> Response:
    state: ServerState = request.app.state.stepwise
    store = state.engine.store
    # The API names an app by the name its SDK gives it, not by the store's id for it.
    app_names = {a.id: a.name for a in await store.list_apps()}
    functions = [
        {"app": app_names.get(fn.app_id, ""), "slug": fn.slug, "name": fn.name}
        for fn in sorted(await store.list_functions(), key=lambda f: f.slug)
        if fn.app_id in app_names
    ]
    rows = [cancellation_json(record) for record in await store.list_cancellations()]
    return render(request, "cancellations.html", functions=functions, rows=rows)
