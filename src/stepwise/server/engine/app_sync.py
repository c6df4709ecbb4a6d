"""Syncing an app from its URL: the PUT that asks it to register, and what came of it.

The server asks an app to sync by sending a PUT to its serve URL. Out of band, the app
answers after it has posted its functions to ``/fn/register``; in band (asked for by a
server with a signing key), the app answers with its config, signed, and the server
stores that. Every attempt is kept per URL (the app's own ``/fn/register`` calls are kept
there too), so the dashboard and the API can say when an app last synced and why it did not.

Which URLs the server syncs: those given with ``-u``, those of the apps that registered,
and those added through ``POST /v1/apps`` (kept in the store, so every node and every
restart knows them). A URL added through the API goes through the outbound guard: in
production the server will not reach a private address for whoever holds an API key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...errors import ApiError
from ...protocol import SignatureError, verify
from ...protocol import headers as h
from ..store.records import AppRecord, AppSyncRecord
from .endpoints import is_endpoint_app
from .engine import Engine
from .outbound import OutboundError, OutboundResponse
from .sync_config import check_url, sync_app

# Kept of an app's answer in an error message: enough to read, not a page of HTML.
ANSWER_CHARS = 300


class SyncOutcome(StrEnum):
    OK = "ok"
    REFUSED = "refused"  # the outbound guard will not connect there: nothing was sent
    UNREACHABLE = "unreachable"
    FAILED = "failed"  # the URL answered, but no app synced from it


@dataclass(frozen=True, slots=True)
class SyncResult:
    outcome: SyncOutcome
    record: AppSyncRecord

    @property
    def ok(self) -> bool:
        return self.outcome is SyncOutcome.OK


def _message(body: bytes) -> str:
    """The reason an app gave: its JSON ``message`` or ``error``, else the start of its body."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict):
        for key in ("message", "error"):
            if isinstance(payload.get(key), str) and payload[key]:
                return str(payload[key])[:ANSWER_CHARS]
    return body.decode("utf-8", "replace").strip()[:ANSWER_CHARS] or "(an empty body)"


def _relayed_refusal(body: bytes) -> str | None:
    """The registration error an app relays in a 2xx answer, if it does.

    The official Python SDK answers the sync PUT with 200 whatever came of its
    ``/fn/register``, and the server's refusal as the body: ``{error, code, status}``.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), str):
        return None
    reason = f"the app's registration failed: {payload['error'][:ANSWER_CHARS]}"
    if payload.get("status") == 401:
        reason += "; check that the app and the server use the same signing key"
    return reason


class InBandAnswer(BaseModel):
    """An app's in-band answer to the sync PUT: the fields the server uses (the SDKs send
    more, such as ``inspection``, ``env`` and ``platform``)."""

    model_config = ConfigDict(extra="ignore")

    app_id: str = Field(min_length=1)
    url: str
    functions: list[Any] = Field(default_factory=list)
    framework: str | None = None
    sdk: str | None = None  # the JS SDK's "js:v4.24.0"; the Python SDK sends the parts
    sdk_language: str | None = None
    sdk_version: str | None = None


async def _sync_in_band(engine: Engine, response: OutboundResponse) -> tuple[str | None, str]:
    """Store the config an app answered with; (why not, or None; the app's name)."""
    key = engine.driver.signing_key
    if key:
        try:
            verify(
                response.body, dict(response.headers).get(h.SIGNATURE), [key], canonicalize=False
            )
        except SignatureError as exc:
            return (
                f"the app's in-band sync answer is not signed with the server's key ({exc}); "
                "in production the server takes an app's config only when it is",
                "",
            )
    try:
        answer = InBandAnswer.model_validate_json(response.body)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "the body"
        return f"the app's in-band sync answer is malformed: {where}: {problem['msg']}", ""
    sdk = answer.sdk or (
        f"{answer.sdk_language}:v{answer.sdk_version}"
        if answer.sdk_language and answer.sdk_version
        else ""
    )
    fields = {
        "appname": answer.app_id,
        "functions": answer.functions,
        "sdk": sdk,
        "framework": answer.framework or "",
    }
    try:
        await sync_app(engine, fields, check_url(answer.url, "url"))
    except ApiError as exc:
        return exc.message, answer.app_id
    return None, answer.app_id


async def served_apps(engine: Engine) -> list[AppRecord]:
    """The apps that synced from a serve endpoint: not durable endpoints' apps, which
    have none (the server only calls their handlers' URLs)."""
    return [app for app in await engine.store.list_apps() if not is_endpoint_app(app)]


async def trusted_urls(engine: Engine, flag_urls: tuple[str, ...]) -> set[str]:
    """URLs the server reaches without the outbound guard: its operator's ``-u`` URLs and
    those of apps that registered with the signing key (the server calls their functions
    there anyway)."""
    return set(flag_urls) | {app.url for app in await served_apps(engine)}


async def urls_to_sync(engine: Engine, flag_urls: tuple[str, ...]) -> list[str]:
    added = {s.url for s in await engine.store.list_app_syncs() if s.added_at is not None}
    return sorted(await trusted_urls(engine, flag_urls) | added)


async def sync_url(engine: Engine, url: str, *, guarded: bool, add: bool = False) -> SyncResult:
    """Ask the app at ``url`` to sync now and keep how it went; ``add`` keeps the URL in the
    set the server syncs. A URL the guard refuses is not kept: nothing was sent to it."""
    error: str | None = None
    app_name: str | None = None
    outcome = SyncOutcome.OK
    try:
        response = await engine.driver.ping(url, guarded=guarded)
    except OutboundError as exc:
        refused = not exc.retryable
        outcome = SyncOutcome.REFUSED if refused else SyncOutcome.UNREACHABLE
        error = f"{'refused' if refused else 'unreachable'}: {exc}"
    else:
        answer_headers = dict(response.headers)
        in_band = answer_headers.get(h.SYNC_KIND) == h.SYNC_KIND_IN_BAND
        if response.status == 200 and in_band:
            error, app_name = await _sync_in_band(engine, response)
            if error is not None:
                outcome = SyncOutcome.FAILED
        elif response.status == 401:
            outcome = SyncOutcome.FAILED
            error = (
                f"a bad signature: the sync failed with HTTP 401 ({_message(response.body)}); "
                "check that the app and the server use the same signing key"
            )
        elif response.status >= 300:
            outcome = SyncOutcome.FAILED
            error = f"the app answered HTTP {response.status}: {_message(response.body)}"
        elif url in {app.url for app in await served_apps(engine)}:
            pass  # the app registered from this URL before it answered: synced
        elif h.SDK not in answer_headers:
            outcome = SyncOutcome.FAILED
            error = (
                f"the URL answered HTTP {response.status} without an {h.SDK} header: "
                "it is not an Inngest SDK's serve endpoint"
            )
        else:
            outcome = SyncOutcome.FAILED
            error = _relayed_refusal(response.body) or (
                "the app answered but registered no app from this URL (an app whose serve "
                "origin or path is set registers that URL instead: add that one)"
            )
    record = AppSyncRecord(
        url=url,
        attempted_at=int(time.time() * 1000),
        ok=outcome is SyncOutcome.OK,
        error=error,
        added_at=int(time.time() * 1000) if add else None,
        app_name=app_name or None,
    )
    if outcome is not SyncOutcome.REFUSED:
        await engine.store.record_app_sync(record)
    return SyncResult(outcome, record)
