"""``/login`` and ``/logout``: the dashboard's session in production (see ``api/session.py``).

The password is an API key made with ``stepwise keys create``, or the signing key (or its
hash, as the API takes it). Wrong passwords count against the client address in the same
per-node counter as the API's failed authentications, so a guesser gets no more tries
from the login form than from the API; past the limit the page says when to try again.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...protocol import bearer_matches
from ..api.auth import client_address, retry_after_s
from ..api.authenticator import now_ms
from ..api.session import csrf_matches, current_session, end_session, start_session
from ..api.state import ServerState
from ..keys import api_key_matches, hash_api_key, looks_like_api_key
from .pages import render

# A password and a path fit in far less; a bigger body is refused unread.
MAX_FORM_BYTES = 8192
HOME = "/runs"


def _local(target: str | None) -> str:
    """Where to go after logging in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return HOME
    return target


async def _form(request: Request) -> dict[str, str]:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    return {name: values[0] for name, values in fields.items()}


def _login_page(
    request: Request, target: str, status_code: int = 200, message: str = ""
) -> Response:
    return render(request, "login.html", status_code, next=target, message=message)


async def login_form(request: Request) -> Response:
    state: ServerState = request.app.state.stepwise
    target = _local(request.query_params.get("next"))
    if state.config.dev or await current_session(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, target)


async def login(request: Request) -> Response:
    state: ServerState = request.app.state.stepwise
    signing_key = state.config.signing_key
    if state.config.dev or not signing_key:
        return RedirectResponse(HOME, status_code=303)
    client = client_address(request)
    now = now_ms()
    form = await _form(request)
    target = _local(form.get("next"))
    retry_after = retry_after_s(state, client, now)
    if retry_after:
        response = _login_page(
            request,
            target,
            429,
            f"Too many failed attempts from {client}. Try again in {retry_after} s.",
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    password = form.get("password", "").strip()
    key_hash: str | None = None
    accepted = bool(password) and bearer_matches(password, signing_key)
    if not accepted and looks_like_api_key(password):
        key_hash = hash_api_key(password)
        found = await state.auth.keys.find(state.engine.store, key_hash)
        accepted = found is not None and api_key_matches(password, found.key_hash)
    if not accepted:
        state.auth.failures.record(client, now)
        return _login_page(
            request,
            target,
            401,
            "Wrong password: give an API key made with stepwise keys create (not revoked),"
            " or the server's signing key.",
        )
    response = RedirectResponse(target, status_code=303)
    start_session(request, response, signing_key, key_hash)
    return response


async def logout(request: Request) -> Response:
    """Forgets the session in this browser. The cookie is not stored server-side, so a
    copy taken elsewhere stays valid until it expires: revoke the key to end it sooner."""
    state: ServerState = request.app.state.stepwise
    if state.config.dev:
        return RedirectResponse(HOME, status_code=303)
    session = await current_session(request)
    form = await _form(request)
    if session is not None and not csrf_matches(session, form.get("csrf_token")):
        # Otherwise any site could log a person out (SameSite=Lax already stops most).
        return _login_page(request, HOME, 403, "Log out refused: the form's token is wrong.")
    response = RedirectResponse("/login", status_code=303)
    end_session(response)
    return response
