"""Bearer auth for the SDK-facing and REST APIs (off in dev mode and when no key is set).

The SDK-facing routes (``/fn/register``, checkpoints) take the signing key or its hash.
The REST API (``/v1``, ``/v0``) also takes an API key made with ``stepwise keys create``,
looked up by its hash in the store; a key found is trusted for ``KEY_CACHE_MS`` before it
is looked up again, so a revoked key is refused on every node within that long. Too many
failures from one client address are answered with a 429 (``authenticator.py``).

A request with no Authorization header may instead carry the dashboard's session cookie
(``session.py``), on the REST API only; if it changes anything, with the CSRF token too.
"""

from __future__ import annotations

import math

from starlette.requests import Request

from ...errors import ApiError
from ...protocol import bearer_matches
from ..keys import api_key_matches, hash_api_key, looks_like_api_key
from .authenticator import now_ms
from .session import current_session, require_csrf
from .state import ServerState


async def require_signing_key(request: Request) -> None:
    """The SDK-facing routes: the signing key (or its hash) only."""
    await _authenticate(request, api_keys=False)


async def require_api_key(request: Request) -> None:
    """The REST API: the signing key (or its hash), or an unrevoked API key."""
    await _authenticate(request, api_keys=True)


async def _authenticate(request: Request, *, api_keys: bool) -> None:
    state: ServerState = request.app.state.stepwise
    signing_key = state.config.signing_key
    if not signing_key or state.config.dev:
        return
    client = client_address(request)
    now = now_ms()
    retry_after = retry_after_s(state, client, now)
    if retry_after:
        error = ApiError(
            429,
            "too_many_auth_failures",
            f"too many failed authentications from {client}; retry in {retry_after} s",
            retry_after=retry_after,
        )
        error.headers["Retry-After"] = str(retry_after)
        raise error
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        if bearer_matches(token, signing_key):
            return
        if api_keys and looks_like_api_key(token):
            # Looked up by hash, so the look-up's timing tells nothing about a stored key.
            found = await state.auth.keys.find(state.engine.store, hash_api_key(token))
            if found is not None and api_key_matches(token, found.key_hash):
                return
    elif api_keys and not header:
        session = await current_session(request)
        if session is not None:
            require_csrf(request, session)
            return
    state.auth.failures.record(client, now)
    wanted = "a valid signing key or API key" if api_keys else "a valid signing key"
    raise ApiError(401, "unauthorized", f"{wanted} is required (Authorization: Bearer ...)")


def client_address(request: Request) -> str:
    """Whom failures are counted against. Behind a reverse proxy this is the address it
    forwards, if uvicorn trusts the proxy (--forwarded-allow-ips; by default only one on
    127.0.0.1)."""
    return request.client.host if request.client else "unknown"


def retry_after_s(state: ServerState, client: str, now: int) -> int:
    """0 if ``client`` may try to authenticate now, else the seconds until it may."""
    wait_ms = state.auth.failures.retry_after_ms(client, now)
    return max(1, math.ceil(wait_ms / 1000)) if wait_ms > 0 else 0
