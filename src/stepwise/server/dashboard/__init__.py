"""The dashboard: server-rendered pages at ``/``, made live with htmx.

Pages read through the same store operations and JSON shapes as the REST API, so nothing
they show is private to them; their actions (send an event, cancel a run) are requests
to the public API made from the browser. Every asset is served from this package.

``stepwise dev`` serves them to anyone, as it serves its API. ``stepwise start`` serves
them only within a session opened at ``/login`` (``login.py``, ``api/session.py``); its
pages' requests to the API then carry the session's CSRF token.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import (
    apps_page,
    cancellations_page,
    functions_page,
    login,
    pages,
    runs_page,
    value_pages,
)

STATIC = Path(__file__).parent / "static"


def routes() -> list[BaseRoute]:
    return [
        Route("/", pages.home, methods=["GET"]),
        Route("/runs", runs_page.runs, methods=["GET"]),
        Route("/events", pages.events, methods=["GET"]),
        Route("/runs/{run_id}", pages.run, methods=["GET"]),
        Route("/runs/{run_id}/value", value_pages.run_value, methods=["GET"]),
        Route("/events/{internal_id}/value", value_pages.event_value, methods=["GET"]),
        Route("/functions", functions_page.functions, methods=["GET"]),
        Route("/functions/{slug}", functions_page.function, methods=["GET"]),
        Route("/apps", apps_page.apps, methods=["GET"]),
        Route("/cancellations", cancellations_page.cancellations, methods=["GET"]),
        Route("/login", login.login_form, methods=["GET"]),
        Route("/login", login.login, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
