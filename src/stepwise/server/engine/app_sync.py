"""Syncing an app from its URL: the PUT that asks it to register, and what came of it.

The server asks an app to sync by sending a PUT to its serve URL; the app answers after
it has posted its functions to ``/fn/register``. Every attempt is kept per URL (the app's
own ``/fn/register`` calls are kept there too), so the dashboard and the API can say when
an app last synced and why it did not.

Which URLs the server syncs: those given with ``-u``, those of the apps that registered,
and those added through ``POST /v1/apps`` (kept in the store, so every node and every
restart knows them). A URL added through the API goes through the outbound guard: in
production the server will not reach a private address for whoever holds an API key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import orjson

from ...protocol import headers as h
from ..store.records import AppSyncRecord
from .engine import Engine
from .outbound import OutboundError

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


async def trusted_urls(engine: Engine, flag_urls: tuple[str, ...]) -> set[str]:
    """URLs the server reaches without the outbound guard: its operator's ``-u`` URLs and
    those of apps that registered with the signing key (the server calls their functions
    there anyway)."""
    return set(flag_urls) | {app.url for app in await engine.store.list_apps()}


async def urls_to_sync(engine: Engine, flag_urls: tuple[str, ...]) -> list[str]:
    added = {s.url for s in await engine.store.list_app_syncs() if s.added_at is not None}
    return sorted(await trusted_urls(engine, flag_urls) | added)


async def sync_url(engine: Engine, url: str, *, guarded: bool, add: bool = False) -> SyncResult:
    """Ask the app at ``url`` to sync now and keep how it went; ``add`` keeps the URL in the
    set the server syncs. A URL the guard refuses is not kept: nothing was sent to it."""
    error: str | None = None
    outcome = SyncOutcome.OK
    try:
        response = await engine.driver.ping(url, guarded=guarded)
    except OutboundError as exc:
        refused = not exc.retryable
        outcome = SyncOutcome.REFUSED if refused else SyncOutcome.UNREACHABLE
        error = f"{'refused' if refused else 'unreachable'}: {exc}"
    else:
        answer_headers = dict(response.headers)
        if response.status == 401:
            outcome = SyncOutcome.FAILED
            error = (
                f"a bad signature: the sync failed with HTTP 401 ({_message(response.body)}); "
                "check that the app and the server use the same signing key"
            )
        elif response.status >= 300:
            outcome = SyncOutcome.FAILED
            error = f"the app answered HTTP {response.status}: {_message(response.body)}"
        elif url in {app.url for app in await engine.store.list_apps()}:
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
    )
    if outcome is not SyncOutcome.REFUSED:
        await engine.store.record_app_sync(record)
    return SyncResult(outcome, record)
