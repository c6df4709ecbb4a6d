"""``GET /openapi.json`` and ``GET /docs``: the API's description, and Swagger UI showing it.

Swagger UI's files are vendored in ``swagger_ui/`` and served from ``/docs/assets``: the
page loads nothing from anywhere else (its online spec validator is switched off).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from .openapi import build_document
from .state import ServerState

ASSETS = "/docs/assets"

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Stepwise API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true
}});
</script>
</body>
</html>
"""


@cache
def _document(dev: bool) -> bytes:
    return orjson.dumps(build_document(dev=dev))


async def openapi_json(request: Request) -> Response:
    state: ServerState = request.app.state.stepwise
    return Response(_document(state.config.dev), media_type="application/json")


async def docs_page(request: Request) -> Response:
    return HTMLResponse(_PAGE)


def assets_folder() -> Path:
    return Path(str(resources.files(__package__).joinpath("swagger_ui")))


def assets() -> Mount:
    return Mount(ASSETS, app=StaticFiles(directory=assets_folder()), name="docs-assets")
