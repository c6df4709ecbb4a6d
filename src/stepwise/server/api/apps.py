"""Apps: ``GET /v1/apps``, ``GET /v1/apps/{name}``, ``POST /v1/apps`` (add an app by its
URL), ``POST /v1/apps/{name}/resync``, and ``GET /v1/app-syncs`` (every URL the server
syncs, with its last attempt, whether or not an app has registered from it yet)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from ..engine.app_sync import SyncOutcome, SyncResult, sync_url, trusted_urls
from ..store.records import AppRecord, AppSyncRecord
from .responses import read_json
from .rest import _state, function_json, iso, wrap
from .state import ServerState

MAX_ADD_BYTES = 16 * 1024


def sdk_parts(sdk: str) -> tuple[str, str]:
    """``"py:v0.1.0"`` → (``"py"``, ``"0.1.0"``): how SDKs name themselves when they sync."""
    language, _, version = sdk.partition(":")
    return language, version.removeprefix("v")


def sync_json(sync: AppSyncRecord | None) -> dict[str, Any] | None:
    if sync is None:
        return None
    return {
        "url": sync.url,
        "status": "ok" if sync.ok else "failing",
        "error": sync.error,
        "attempted_at": iso(sync.attempted_at),
        "added_at": iso(sync.added_at),
        "app_name": sync.app_name,
    }


def app_json(state: ServerState, app: AppRecord, syncs: dict[str, AppSyncRecord]) -> dict[str, Any]:
    language, version = sdk_parts(app.sdk)
    functions = [function_json(s) for s in state.engine.registry.all() if s.record.app_id == app.id]
    return {
        "id": app.id,
        "name": app.name,
        "url": app.url,
        "sdk": app.sdk,
        "sdk_language": language,
        "sdk_version": version,
        "framework": app.framework,
        "synced_at": iso(app.updated_at),
        "function_count": len(functions),
        "functions": functions,
        "sync": sync_json(syncs.get(app.url)),
    }


async def _syncs(state: ServerState) -> dict[str, AppSyncRecord]:
    return {s.url: s for s in await state.engine.store.list_app_syncs()}


async def _app(state: ServerState, name: str) -> AppRecord:
    app = next((a for a in await state.engine.store.list_apps() if a.name == name), None)
    if app is None:
        raise ApiError(404, "app_not_found", f"no app named {name!r} has synced")
    return app


async def list_apps(request: Request) -> Response:
    """Every synced app with its functions and its last sync attempt."""
    state = await _state(request)
    syncs = await _syncs(state)
    return wrap([app_json(state, a, syncs) for a in await state.engine.store.list_apps()])


async def get_app(request: Request) -> Response:
    state = await _state(request)
    app = await _app(state, str(request.path_params["app_name"]))
    return wrap(app_json(state, app, await _syncs(state)))


async def list_app_syncs(request: Request) -> Response:
    state = await _state(request)
    return wrap([sync_json(s) for s in await state.engine.store.list_app_syncs()])


class AddAppBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str


def _failure(result: SyncResult) -> ApiError:
    message = result.record.error or "the app did not sync"
    if result.outcome is SyncOutcome.REFUSED:
        return ApiError(400, "url_refused", message)
    # The server is a gateway to the app here: the app's failure is a bad answer upstream.
    return ApiError(502, "app_sync_failed", message, sync=sync_json(result.record))


async def _answer(state: ServerState, url: str, result: SyncResult, status: int) -> Response:
    if not result.ok:
        raise _failure(result)
    apps = [a for a in await state.engine.store.list_apps() if a.url == url]
    if not apps:  # the app's own register call may have moved it since: say so plainly
        raise ApiError(502, "app_sync_failed", "no app is registered from this URL any more")
    response = wrap(app_json(state, apps[0], await _syncs(state)))
    response.status_code = status
    return response


async def add_app(request: Request) -> Response:
    """Sync the app at a URL now, and keep syncing it as a ``-u`` URL is (every node)."""
    state = await _state(request)
    try:
        body = AddAppBody.model_validate(await read_json(request, max_bytes=MAX_ADD_BYTES))
    except ValidationError as exc:
        raise ApiError(
            400,
            "invalid_app_url",
            'the body must be {"url": "<the app\'s serve URL>"}: ' + str(exc.errors()[0]["msg"]),
        ) from None
    url = body.url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, "invalid_app_url", f"not an absolute http(s) URL: {url!r}")
    guarded = url not in await trusted_urls(state.engine, state.config.sdk_urls)
    result = await sync_url(state.engine, url, guarded=guarded, add=True)
    return await _answer(state, url, result, 201)


async def resync_app(request: Request) -> Response:
    state = await _state(request)
    app = await _app(state, str(request.path_params["app_name"]))
    # The app's URL is where the server calls its functions already: no guard to pass.
    result = await sync_url(state.engine, app.url, guarded=False)
    return await _answer(state, app.url, result, 200)
