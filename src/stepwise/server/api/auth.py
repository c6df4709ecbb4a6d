"""Bearer auth for the SDK-facing and REST APIs (off in dev mode and when no key is set).

The SDK-facing routes (``/fn/register``, checkpoints) take the signing key or its hash.
The REST API (``/v1``, ``/v0``) also takes an API key made with ``stepwise keys create``,
looked up by its hash in the store; a key found is trusted for ``KEY_CACHE_MS`` before it
is looked up again, so a revoked key is refused on every node within that long. Too many
failures from one client address are answered with a 429 (``authenticator.py``).
"""

from __future__ import annotations

import math

from starlette.requests import Request

from ...errors import ApiError
from ...protocol import bearer_matches
from ..keys import api_key_matches, hash_api_key, looks_like_api_key
from .authenticator import now_ms
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
    # Behind a reverse proxy this is the address it forwards, if uvicorn trusts the proxy
    # (--forwarded-allow-ips; by default only one on 127.0.0.1).
    client = request.client.host if request.client else "unknown"
    now = now_ms()
    wait_ms = state.auth.failures.retry_after_ms(client, now)
    if wait_ms > 0:
        retry_after = max(1, math.ceil(wait_ms / 1000))
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
    state.auth.failures.record(client, now)
    wanted = "a valid signing key or API key" if api_keys else "a valid signing key"
    raise ApiError(401, "unauthorized", f"{wanted} is required (Authorization: Bearer ...)")
