"""The dashboard of a production server, over HTTP: login, the session cookie, CSRF.

Each test sends its requests from its own ``X-Forwarded-For`` address (uvicorn trusts it
from 127.0.0.1), so that the failed logins one test makes count against that address only.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from support.api_keys import create_key, keys_cli
from support.harness import ServerProcess, wait_until

SIGNING_KEY = "signkey-prod-" + "7e" * 32
PAGES = ("/", "/runs", "/events", "/functions", "/apps", "/runs/01JABCDEFGHJKMNPQRSTVWXYZ0")
UNKNOWN_RUN = "01JABCDEFGHJKMNPQRSTVWXYZ0"


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("dashboard-login"), sdk_urls=[])
    proc.production(signing_key=SIGNING_KEY, event_key="login-event-key")
    proc.start_and_wait()
    yield proc
    proc.close()


def browser(server: ServerProcess, address: str, **headers: str) -> httpx.Client:
    """A client that keeps cookies, as a browser does, and sends no Authorization."""
    return httpx.Client(
        base_url=server.url, headers={"x-forwarded-for": address, **headers}, timeout=10
    )


def log_in(client: httpx.Client, password: str, next_page: str = "/events") -> httpx.Response:
    return client.post("/login", data={"password": password, "next": next_page})


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/events")
    assert page.status_code == 200, page.text
    marker = '<meta name="csrf-token" content="'
    token = page.text.split(marker, 1)[1].split('"', 1)[0]
    assert len(token) >= 32
    return token


def session_cookie(secret_source: str, *, issued_at: int | None = None) -> str:
    """A cookie made the way the docs say the server makes one (so any node can check it)."""
    secret = hmac.new(
        secret_source.encode(), b"stepwise dashboard session cookie v1", hashlib.sha256
    ).digest()

    class At(TimestampSigner):
        def get_timestamp(self) -> int:
            return issued_at if issued_at is not None else int(time.time())

    serializer = URLSafeTimedSerializer(secret, salt="stepwise.session", signer=At)
    return serializer.dumps({"key": None, "csrf": "t" * 43})


def test_every_page_leads_to_the_login_without_a_session(server: ServerProcess) -> None:
    with browser(server, "192.0.2.10") as anonymous:
        for path in PAGES:
            response = anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == "/login?next=" + path.replace("/", "%2F")
        # A live region refreshing by htmx loads the login page instead of swapping it in.
        refresh = anonymous.get("/events", headers={"hx-request": "true"})
        assert refresh.status_code == 401
        assert refresh.headers["hx-redirect"] == "/login?next=%2Fevents"

        form = anonymous.get("/login?next=/apps")
        assert form.status_code == 200
        assert 'name="password"' in form.text
        assert 'value="/apps"' in form.text
        assert 'href="/events"' not in form.text  # no navigation before logging in


def test_an_api_key_opens_a_session_in_a_safe_cookie(server: ServerProcess) -> None:
    _, key = create_key(server, "dashboard")
    with browser(server, "192.0.2.11") as person:
        response = log_in(person, key, "/apps")
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/apps"
        cookie = response.headers["set-cookie"].lower()
        for attribute in ("stepwise_session=", "httponly", "samesite=lax", "path=/"):
            assert attribute in cookie
        assert "max-age=43200" in cookie  # 12 hours
        assert "secure" not in cookie  # plain HTTP: a Secure cookie would never come back
        for path in PAGES[1:]:
            assert person.get(path).status_code == 200, path
        assert "Log out" in person.get("/apps").text
        # Logged in already: the login page sends the person on.
        again = person.get("/login?next=/functions")
        assert (again.status_code, again.headers["location"]) == (303, "/functions")
        # Reads of the API go through on the session alone, as the pages' links do.
        assert person.get("/v1/events").status_code == 200


def test_the_cookie_is_secure_behind_https(server: ServerProcess) -> None:
    with browser(server, "192.0.2.12", **{"x-forwarded-proto": "https"}) as person:
        response = log_in(person, SIGNING_KEY)
        assert response.status_code == 303, response.text
        assert "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize("password", ["signing key", "its hash"])
def test_the_signing_key_opens_a_session(server: ServerProcess, password: str) -> None:
    given = SIGNING_KEY if password == "signing key" else server.http.headers["authorization"][7:]
    with browser(server, "192.0.2.13") as person:
        assert log_in(person, given).status_code == 303
        assert person.get("/events").status_code == 200


def test_a_wrong_password_is_refused_then_rate_limited_with_the_api(
    server: ServerProcess,
) -> None:
    _, key = create_key(server, "limited")
    with browser(server, "192.0.2.14") as guesser:
        # The API's failures and the login's count in one counter per address: 10 a minute.
        for _ in range(5):
            assert guesser.get("/v1/events").status_code == 401
        for password in ("", "hunter2", "sw_key_" + "A" * 43, SIGNING_KEY + "0", "x" * 5000):
            refused = log_in(guesser, password)
            assert refused.status_code == 401, refused.text
            assert "Wrong password" in refused.text
            assert 'id="login-error"' in refused.text
            assert "set-cookie" not in refused.headers
        limited = log_in(guesser, key)
        assert limited.status_code == 429
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert f"Try again in {retry_after} s" in limited.text
        assert "set-cookie" not in limited.headers
        assert guesser.get("/v1/events").status_code == 429
        assert guesser.get("/events").status_code == 303  # still no session

        with browser(server, "192.0.2.15") as elsewhere:
            assert log_in(elsewhere, key).status_code == 303
        wait_until(
            lambda: log_in(guesser, key).status_code == 303,
            timeout=retry_after + 2,
            interval=0.5,
            what="the lock-out to pass",
        )


def test_state_changes_on_the_session_need_the_csrf_token(server: ServerProcess) -> None:
    with browser(server, "192.0.2.16") as person:
        assert log_in(person, SIGNING_KEY).status_code == 303
        token = csrf_of(person)
        cancel = f"/v1/runs/{UNKNOWN_RUN}"
        for headers in ({}, {"x-csrf-token": "t" * 43}):
            refused = person.delete(cancel, headers=headers)
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "csrf_token_invalid"
            assert "X-CSRF-Token" in refused.json()["error"]
            sent = person.post("/e/dashboard", json={"name": "dash/test"}, headers=headers)
            assert sent.status_code == 403
            assert sent.json()["code"] == "csrf_token_invalid"
            assert sent.json()["ids"] == []
        # With the token the request gets past authentication (and finds no such run).
        passed = person.delete(cancel, headers={"x-csrf-token": token})
        assert passed.status_code == 404, passed.text
        # The session stands in for the event key, so the page never holds one.
        sent = person.post(
            "/e/dashboard", json={"name": "dash/test"}, headers={"x-csrf-token": token}
        )
        assert sent.status_code == 200, sent.text
        (event_id,) = sent.json()["ids"]
        assert server.http.get(f"/v1/events/{event_id}").status_code == 200

        # The session stands in for no key on the routes the SDKs call.
        register = person.post("/fn/register", json={}, headers={"x-csrf-token": token})
        assert register.status_code == 401

    # Without a session, a wrong event key is what it was; Bearer clients need no token.
    with browser(server, "192.0.2.17") as anonymous:
        refused = anonymous.post("/e/dashboard", json={"name": "dash/test"})
        assert refused.status_code == 401
        assert refused.json()["code"] == "event_key_not_found"
        refused = anonymous.delete(cancel)
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthorized"
    assert server.http.delete(cancel).status_code == 404


def test_revoking_the_key_ends_its_session(server: ServerProcess) -> None:
    key_id, key = create_key(server, "short-lived")
    with browser(server, "192.0.2.18") as person:
        assert log_in(person, key).status_code == 303
        assert person.get("/events").status_code == 200
        assert keys_cli(server, "revoke", key_id).returncode == 0
        wait_until(
            lambda: person.get("/events").status_code == 303,
            timeout=3,
            what="the session to end with its key",
        )
        assert person.get("/v1/events").status_code == 401
        refused = log_in(person, key)
        assert refused.status_code == 401
        assert "Wrong password" in refused.text


def test_expired_and_forged_cookies_are_refused(server: ServerProcess) -> None:
    fresh = session_cookie(SIGNING_KEY)
    expired = session_cookie(SIGNING_KEY, issued_at=int(time.time()) - 12 * 3600 - 60)
    forged = session_cookie("signkey-prod-" + "00" * 32)
    for cookie, status in ((fresh, 200), (expired, 303), (forged, 303), ("garbage", 303)):
        with browser(server, "192.0.2.19") as person:
            person.cookies.set("stepwise_session", cookie)
            assert person.get("/events").status_code == status, cookie


def test_logging_out_needs_the_page_token(server: ServerProcess) -> None:
    with browser(server, "192.0.2.20") as person:
        assert log_in(person, SIGNING_KEY).status_code == 303
        token = csrf_of(person)
        refused = person.post("/logout", data={"csrf_token": "wrong"})
        assert refused.status_code == 403
        assert person.get("/events").status_code == 200
        out = person.post("/logout", data={"csrf_token": token})
        assert (out.status_code, out.headers["location"]) == (303, "/login")
        assert 'stepwise_session=""' in out.headers["set-cookie"]
        assert "stepwise_session" not in person.cookies
        assert person.get("/events").status_code == 303


def test_the_dev_server_needs_no_login(tmp_path: Path) -> None:
    dev = ServerProcess(tmp_path, sdk_urls=[])
    try:
        dev.start_and_wait()
        with browser(dev, "192.0.2.21") as person:
            assert person.get("/events").status_code == 200
            assert 'content=""' in person.get("/events").text  # no CSRF token to send
            assert person.get("/login").headers["location"] == "/runs"
            assert person.delete(f"/v1/runs/{UNKNOWN_RUN}").status_code == 404
    finally:
        dev.close()


# Nodes share a database only on PostgreSQL.
@pytest.mark.backends("postgres")
def test_every_node_of_a_cluster_accepts_the_session(tmp_path: Path, pg_uri: str) -> None:
    nodes = [ServerProcess(tmp_path, sdk_urls=[], postgres_uri=pg_uri) for _ in range(2)]
    try:
        for node in nodes:
            node.production(signing_key=SIGNING_KEY, event_key="login-event-key")
            node.start_and_wait(timeout=60)
        key_id, key = create_key(nodes[0], "cluster")
        with browser(nodes[0], "192.0.2.22") as person:
            assert log_in(person, key).status_code == 303
            cookie = person.cookies["stepwise_session"]
        with browser(nodes[1], "192.0.2.22") as same_person:
            same_person.cookies.set("stepwise_session", cookie)
            assert same_person.get("/events").status_code == 200
            assert keys_cli(nodes[1], "revoke", key_id).returncode == 0
            wait_until(
                lambda: same_person.get("/events").status_code == 303,
                timeout=3,
                what="the other node to end the session",
            )
    finally:
        for node in nodes:
            node.close()
