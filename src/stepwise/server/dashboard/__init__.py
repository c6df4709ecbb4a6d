"""The dashboard: server-rendered pages at ``/``, made live with htmx.

Pages read through the same store operations and JSON shapes as the REST API, so nothing
they show is private to them; their actions (send an event, cancel a run) are requests
to the public API made from the browser. Every asset is served from this package.

Dev mode only for now: production needs the login and session of issue 9 first, and an
unauthenticated page must not show a production server's runs.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import pages

STATIC = Path(__file__).parent / "static"


def routes() -> list[BaseRoute]:
    return [
        Route("/", pages.home, methods=["GET"]),
        Route("/events", pages.events, methods=["GET"]),
        Route("/runs/{run_id}", pages.run, methods=["GET"]),
        Route("/functions", pages.functions, methods=["GET"]),
        Route("/apps", pages.apps, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
