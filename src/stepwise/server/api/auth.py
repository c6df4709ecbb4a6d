"""Bearer signing-key auth for the SDK-facing and REST APIs (off when no key is configured)."""

from __future__ import annotations

from starlette.requests import Request

from ...errors import ApiError
from ...protocol import bearer_matches
from .state import ServerState


def require_signing_key(request: Request) -> None:
    state: ServerState = request.app.state.stepwise
    key = state.config.signing_key
    if not key or state.config.dev:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or not bearer_matches(token, key):
        raise ApiError(
            401, "unauthorized", "a valid signing key is required (Authorization: Bearer ...)"
        )
