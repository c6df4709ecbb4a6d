"""Our SDK's serve endpoint against the wire protocol reference (``inngest-protocol.md``):
introspection bodies (§2.1), the sync request (§2.2), the signature test vector (§6.2),
error statuses and headers (§3.1, §3.2) and ``X-Inngest-Req-Version`` on every answer.

``test_sdk_serve.py`` covers the endpoint's behaviour; these pin the exact shapes.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest
from sdk_support import App, call_body, dev_client

import stepwise
from stepwise.protocol import canonical_json, hash_signing_key, loads, sign
from stepwise.protocol import signature as signature_module
from stepwise.sdk.handler import ServeHandler

# §6.2: key, body and timestamp, and the signature they make.
VECTOR_KEY = "signkey-test-12345678"
VECTOR_BODY = b'{"a":1}'
VECTOR_T = 1700000000
VECTOR_SIGNATURE = "t=1700000000&s=67a82077baa52522b1f612a154a25275c00a0338efc32be5ee396bd2391ba5e0"
FALLBACK = "signkey-test-abcdef01"

UNAUTHENTICATED_KEYS = {
    "schema_version",
    "function_count",
    "has_event_key",
    "has_signing_key",
    "has_signing_key_fallback",
    "mode",
}
AUTHENTICATED_KEYS = UNAUTHENTICATED_KEYS | {
    "authentication_succeeded",
    "api_origin",
    "app_id",
    "capabilities",
    "env",
    "event_api_origin",
    "event_key_hash",
    "framework",
    "sdk_language",
    "sdk_version",
    "serve_origin",
    "serve_path",
    "signing_key_hash",
    "signing_key_fallback_hash",
}
# §3.2: headers on every answer of the serve endpoint.
EVERY_ANSWER = {
    "x-inngest-sdk": "stepwise-py:v0.1.0",
    "user-agent": "stepwise-py:v0.1.0",
    "x-inngest-req-version": "2",
    "x-inngest-framework": "starlette",
    "content-type": "application/json",
}


def production_client(**kwargs: Any) -> stepwise.Stepwise:
    return stepwise.Stepwise(
        "demo",
        signing_key=VECTOR_KEY,
        signing_key_fallback=FALLBACK,
        event_key="evkey",
        is_production=True,
        env="main",
        **kwargs,
    )


def functions(client: stepwise.Stepwise) -> list[stepwise.Function]:
    @client.create_function(fn_id="ok", trigger=stepwise.TriggerEvent(event="demo/ok"))
    async def ok(ctx: stepwise.Context) -> str:
        return "fine"

    @client.create_function(fn_id="flaky", trigger=stepwise.TriggerEvent(event="demo/flaky"))
    async def flaky(ctx: stepwise.Context) -> None:
        raise RuntimeError("try again")

    @client.create_function(fn_id="fatal", trigger=stepwise.TriggerEvent(event="demo/fatal"))
    async def fatal(ctx: stepwise.Context) -> None:
        raise stepwise.NonRetriableError("never")

    @client.create_function(fn_id="later", trigger=stepwise.TriggerEvent(event="demo/later"))
    async def later(ctx: stepwise.Context) -> None:
        raise stepwise.RetryAfterError("busy", 30)

    return [ok, flaky, fatal, later]


def assert_every_answer_headers(response: httpx.Response, mode: str) -> None:
    for name, value in EVERY_ANSWER.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    assert response.headers["x-inngest-expected-server-kind"] == mode


@pytest.fixture
def frozen_at_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock at the test vector's timestamp, for the signature checks only."""
    monkeypatch.setattr(signature_module.time, "time", lambda: float(VECTOR_T))


# ---- §2.1 introspection -------------------------------------------------------------------


async def test_unauthenticated_introspection_has_exactly_the_reference_fields() -> None:
    for client, mode in ((dev_client(), "dev"), (production_client(), "cloud")):
        async with App(client, functions(client)) as app:
            response = await app.http.get("/api/inngest")
        assert response.status_code == 200
        assert_every_answer_headers(response, mode)
        body = loads(response.content)
        assert set(body) == UNAUTHENTICATED_KEYS
        assert (body["schema_version"], body["function_count"], body["mode"]) == (
            "2024-05-24",
            4,
            mode,
        )
        assert "x-inngest-signature" not in response.headers


async def test_a_wrongly_signed_get_gets_the_unauthenticated_body_not_an_error() -> None:
    client = production_client()
    async with App(client, functions(client)) as app:
        response = await app.http.get(
            "/api/inngest", headers={"x-inngest-signature": sign(b"", "signkey-test-99")}
        )
    assert response.status_code == 200
    assert set(loads(response.content)) == UNAUTHENTICATED_KEYS


async def test_authenticated_introspection_has_exactly_the_reference_fields() -> None:
    client = production_client()
    async with App(client, functions(client)) as app:
        response = await app.http.get(
            "/api/inngest", headers={"x-inngest-signature": sign(b"", VECTOR_KEY)}
        )
    assert response.status_code == 200
    assert_every_answer_headers(response, "cloud")
    body = loads(response.content)
    assert set(body) == AUTHENTICATED_KEYS
    assert body["authentication_succeeded"] is True
    assert body["app_id"] == "demo" and body["env"] == "main"
    assert (body["api_origin"], body["event_api_origin"]) == (
        "https://api.inngest.com",
        "https://inn.gs",
    )
    assert body["event_key_hash"] == hashlib.sha256(b"evkey").hexdigest()
    assert body["signing_key_hash"] == hash_signing_key(VECTOR_KEY).removeprefix("signkey-test-")
    assert body["signing_key_fallback_hash"] == hash_signing_key(FALLBACK).removeprefix(
        "signkey-test-"
    )
    assert (body["sdk_language"], body["sdk_version"], body["framework"]) == (
        "py",
        "0.1.0",
        "starlette",
    )
    assert body["capabilities"] == {"trust_probe": "v1", "connect": "v1"}
    assert body["has_signing_key_fallback"] is True
    # Signed with the key that verified the request, over the raw body.
    signature_module.verify(
        response.content, response.headers["x-inngest-signature"], [VECTOR_KEY], canonicalize=False
    )


# ---- §2.2 the sync request -----------------------------------------------------------------


async def test_the_sync_request_carries_the_reference_headers() -> None:
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True, "modified": False})

    client = production_client(transport=httpx.MockTransport(server))
    async with App(client, functions(client)) as app:
        response = await app.http.put("/api/inngest", headers={"x-inngest-server-kind": "cloud"})
    assert response.status_code == 200
    assert response.headers["x-inngest-sync-kind"] == "out_of_band"
    assert_every_answer_headers(response, "cloud")
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/fn/register")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-inngest-sdk"] == "stepwise-py:v0.1.0"
    assert request.headers["user-agent"] == "stepwise-py:v0.1.0"
    assert request.headers["x-inngest-req-version"] == "2"
    assert request.headers["x-inngest-framework"] == "starlette"
    assert request.headers["x-inngest-sync-kind"] == "out_of_band"
    assert request.headers["x-inngest-expected-server-kind"] == "cloud"
    assert request.headers["x-inngest-env"] == "main"
    assert request.headers["authorization"] == f"Bearer {hash_signing_key(VECTOR_KEY)}"
    body = loads(request.content)
    assert set(body) == {
        "url",
        "deployType",
        "appName",
        "sdk",
        "v",
        "framework",
        "functions",
        "capabilities",
    }
    assert (body["deployType"], body["v"], body["sdk"]) == ("ping", "0.1", "py:v0.1.0")
    assert [f["id"] for f in body["functions"]] == [
        "demo-ok",
        "demo-flaky",
        "demo-fatal",
        "demo-later",
    ]


# ---- §6.2 the signature test vector --------------------------------------------------------


def test_the_reference_vector_is_what_our_sdk_signs() -> None:
    assert sign(VECTOR_BODY, VECTOR_KEY, VECTOR_T) == VECTOR_SIGNATURE


async def trust_probe_signed_as_the_vector(body: bytes) -> httpx.Response:
    """A trust probe of ``body`` carrying the vector's signature, to a production app."""
    client = production_client()
    async with App(client, functions(client)) as app:
        return await app.http.post(
            "/api/inngest",
            params={"probe": "trust"},
            content=body,
            headers={"x-inngest-signature": VECTOR_SIGNATURE},
        )


@pytest.mark.parametrize("body", [VECTOR_BODY, b'{ "a" : 1 }'], ids=["exact", "spaced"])
async def test_a_request_signed_as_the_vector_is_verified(
    frozen_at_vector: None, body: bytes
) -> None:
    """The vector's signature passes (the body is re-canonicalized first, so the spaced
    form passes too), and the reply is signed with that key."""
    response = await trust_probe_signed_as_the_vector(body)
    assert response.status_code == 200, response.text
    assert response.headers["x-inngest-signature"] == sign(b"", VECTOR_KEY, VECTOR_T)


async def test_the_vector_signature_is_refused_once_stale() -> None:
    # The real clock is years after the vector's timestamp: too old (JS allows 5 minutes).
    assert time.time() - VECTOR_T > 300
    stale = await trust_probe_signed_as_the_vector(VECTOR_BODY)
    assert stale.status_code == 401


async def test_the_vector_signature_does_not_cover_another_body(frozen_at_vector: None) -> None:
    response = await trust_probe_signed_as_the_vector(b'{"a":2}')
    assert response.status_code == 401
    assert loads(response.content) == {
        "code": "sig_verification_failed",
        "message": "missing or invalid signature",
    }


# ---- §3.1, §3.2 statuses and headers -------------------------------------------------------


async def call(app: App, client: stepwise.Stepwise, fn_id: str, **params: str) -> httpx.Response:
    body = canonical_json(call_body())
    headers = {"x-inngest-signature": sign(body, VECTOR_KEY)} if client.is_production else {}
    return await app.http.post(
        "/api/inngest",
        params={"fnId": fn_id, "stepId": "step", **params},
        content=body,
        headers={"content-type": "application/json", **headers},
    )


@pytest.mark.parametrize("production", [False, True], ids=["dev", "production"])
async def test_function_outcomes_have_the_reference_statuses_and_headers(
    production: bool,
) -> None:
    client = production_client() if production else dev_client()
    mode = "cloud" if production else "dev"
    async with App(client, functions(client)) as app:
        ok = await call(app, client, "demo-ok")
        flaky = await call(app, client, "demo-flaky")
        fatal = await call(app, client, "demo-fatal")
        later = await call(app, client, "demo-later")
    for response in (ok, flaky, fatal, later):
        assert_every_answer_headers(response, mode)
        assert ("x-inngest-signature" in response.headers) is production
    assert (ok.status_code, loads(ok.content), ok.headers["x-inngest-no-retry"]) == (
        200,
        "fine",
        "false",
    )
    # Function errors: 500, retried unless X-Inngest-No-Retry says true (the Python SDK's form).
    assert (flaky.status_code, flaky.headers["x-inngest-no-retry"]) == (500, "false")
    assert loads(flaky.content)["message"] == "try again"
    assert (fatal.status_code, fatal.headers["x-inngest-no-retry"]) == (500, "true")
    assert loads(fatal.content)["name"] == "NonRetriableError"
    assert later.status_code == 500 and "retry-after" in later.headers


async def test_refusals_have_the_reference_statuses_and_a_json_code() -> None:
    client = production_client()
    async with App(client, functions(client)) as app:
        unsigned = await app.http.post(
            "/api/inngest", params={"fnId": "demo-ok", "stepId": "step"}, content=b"{}"
        )
        body = canonical_json(call_body())
        signed = {"x-inngest-signature": sign(body, VECTOR_KEY)}
        unknown_probe = await app.http.post(
            "/api/inngest", params={"probe": "other"}, content=body, headers=signed
        )
        no_fn = await app.http.post("/api/inngest", content=body, headers=signed)
        unknown_fn = await app.http.post(
            "/api/inngest", params={"fnId": "demo-nope"}, content=body, headers=signed
        )
        wrong_kind = await app.http.put("/api/inngest", headers={"x-inngest-server-kind": "dev"})
    # Adapters route only GET, PUT and POST; the handler itself answers any other method.
    handler = ServeHandler(client, functions(client))
    other = await handler.handle("DELETE", "http://app.test/api/inngest", {}, b"")
    other_method = httpx.Response(other.status, headers=other.headers, content=other.body)
    expected = [
        (unsigned, 401, "sig_verification_failed"),
        (unknown_probe, 400, "unknown_probe"),
        (no_fn, 400, "missing_fn_id"),
        (unknown_fn, 404, "function_not_found"),
        (wrong_kind, 400, "server_kind_mismatch"),
        (other_method, 405, "method_not_allowed"),
    ]
    for response, status, code in expected:
        assert response.status_code == status, (code, response.text)
        assert loads(response.content)["code"] == code
        # Even a refusal says which SDK answered and which request version it speaks.
        assert response.headers["x-inngest-sdk"] == "stepwise-py:v0.1.0"
        assert response.headers["x-inngest-req-version"] == "2"


@pytest.mark.parametrize("body", [b"[]", b'{"event": 5}', b"{"])
async def test_a_malformed_call_is_a_non_retriable_400(body: bytes) -> None:
    client = dev_client()
    async with App(client, functions(client)) as app:
        response = await app.http.post(
            "/api/inngest",
            params={"fnId": "demo-ok", "stepId": "step"},
            content=body,
        )
    assert response.status_code == 400
    assert response.headers["x-inngest-no-retry"] == "true"
    assert response.headers["x-inngest-req-version"] == "2"
