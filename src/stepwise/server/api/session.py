"""The dashboard's session in production: a signed cookie, and the CSRF token it carries.

A person logs in at ``/login`` with an API key or the signing key; the server answers
with a cookie that holds, signed with itsdangerous (HMAC-SHA256, with its time of issue),
which key was used and a random CSRF token. Nothing is stored server-side, so any node
can check a cookie another node issued, provided they share the secret.

The secret is derived from the signing key, ``HMAC-SHA256(signing key, SECRET_LABEL)``:
every node of a cluster already has the signing key, so they all accept each other's
cookies with no setting of their own, and rotating the signing key ends every session.
The fixed label keeps the derived secret apart from the signing key's other use (signing
requests to apps): no signature made for one purpose is valid for the other.

A session made with an API key names the key by its hash (what the store keeps; not a
credential, since a presented key is hashed before it is looked up) and ends when the key
is revoked: the key is looked up through the API's key cache, so within ``KEY_CACHE_MS``.

The cookie alone never authorises a change: a request that is not GET/HEAD/OPTIONS and is
authenticated by the cookie must send the session's CSRF token in ``X-CSRF-Token``, which a
page of another site cannot read (it is in the dashboard's HTML, served same-origin only).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError
from .state import ServerState

COOKIE = "stepwise_session"
CSRF_HEADER = "x-csrf-token"
# A session lasts this long from the login, active or not.
SESSION_SECONDS = 12 * 3600
SECRET_LABEL = b"stepwise dashboard session cookie v1"
# itsdangerous's salt: one more namespace, so the serializer signs nothing but sessions.
SALT = "stepwise.session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _Payload(BaseModel):
    # The key's hash, or None for the signing key.
    key: str | None
    csrf: str


@dataclass(frozen=True, slots=True)
class Session:
    key_hash: str | None
    csrf: str


def _serializer(signing_key: str) -> URLSafeTimedSerializer:
    secret = hmac.new(signing_key.encode("utf-8"), SECRET_LABEL, hashlib.sha256).digest()
    return URLSafeTimedSerializer(secret, salt=SALT)


def start_session(
    request: Request, response: Response, signing_key: str, key_hash: str | None
) -> None:
    """Sets a new session's cookie on ``response`` (a fresh CSRF token each login)."""
    payload = _Payload(key=key_hash, csrf=secrets.token_urlsafe(32))
    response.set_cookie(
        COOKIE,
        _serializer(signing_key).dumps(payload.model_dump()),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        # Behind a TLS-terminating proxy the scheme is the one it forwards, when uvicorn
        # trusts the proxy (--forwarded-allow-ips).
        secure=request.url.scheme == "https",
    )


def end_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")


async def current_session(request: Request) -> Session | None:
    """The request's session if its cookie is genuine, not expired, and its key unrevoked."""
    state: ServerState = request.app.state.stepwise
    signing_key = state.config.signing_key
    cookie = request.cookies.get(COOKIE)
    if not signing_key or not cookie:
        return None
    try:
        raw = _serializer(signing_key).loads(cookie, max_age=SESSION_SECONDS)
        payload = _Payload.model_validate(raw)
    except (BadSignature, ValidationError):
        # BadSignature covers an expired cookie too (SignatureExpired derives from it).
        return None
    if payload.key is not None:
        found = await state.auth.keys.find(state.engine.store, payload.key)
        if found is None:
            return None
    return Session(key_hash=payload.key, csrf=payload.csrf)


def csrf_matches(session: Session, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(token.encode(), session.csrf.encode())


def require_csrf(request: Request, session: Session) -> None:
    """Refuses (403) a state-changing request that lacks the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    token = request.headers.get(CSRF_HEADER)
    if not csrf_matches(session, token):
        why = "carries no" if token is None else "carries a wrong"
        raise ApiError(
            403,
            "csrf_token_invalid",
            f"this request is authenticated by the dashboard's session cookie and {why}"
            f" X-CSRF-Token header; send the token from the page's csrf-token meta tag,"
            f" or authenticate with Authorization: Bearer instead",
        )
