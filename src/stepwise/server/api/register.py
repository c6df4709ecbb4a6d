"""``POST /fn/register``: an app syncs its functions (out-of-band sync)."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ...protocol import headers as h
from ..engine.sync_config import check_url, invalid_app, lower_keys, record_sync, sync_app
from .auth import require_signing_key
from .responses import JSONResponse, read_json
from .state import ServerState

MAX_REGISTER_BYTES = 16 * 1024 * 1024


async def register(request: Request) -> Response:
    state: ServerState = request.app.state.stepwise
    await require_signing_key(request)
    expected = request.headers.get(h.EXPECTED_SERVER_KIND)
    if expected and expected != state.config.server_kind:
        raise ApiError(
            400,
            "server_kind_mismatch",
            f"Expected server kind {expected}, got {state.config.server_kind}",
        )
    body = await read_json(request, max_bytes=MAX_REGISTER_BYTES)
    if not isinstance(body, dict):
        raise invalid_app("register body must be a JSON object")
    fields = lower_keys(body)
    url = check_url(fields.get("url"), "url")
    try:
        app, modified = await sync_app(state.engine, fields, url)
    except ApiError as exc:
        # Kept for the app's URL, so the dashboard shows why it is not synced (the app,
        # proven by the signing key, only reads the reason in its own logs otherwise).
        name = fields.get("appname")
        await record_sync(
            state.engine, url, error=exc.message, app_name=name if isinstance(name, str) else None
        )
        raise
    await record_sync(state.engine, url, error=None, app_name=app.name)
    return JSONResponse(
        {"ok": True, "modified": modified, "app_id": app.id, "sync_id": str(uuid.uuid4())}
    )
