"""The serve endpoint's GET (introspection), PUT (sync) and signed POST."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sdk_support import App, call_body, dev_client

import stepwise
from stepwise.adapters.fastapi import serve as fastapi_serve
from stepwise.protocol import canonical_json, dumps, hash_signing_key, loads, sign, verify
from stepwise.sdk.handler import ServeHandler

KEY = "signkey-test-12345678"
FALLBACK = "signkey-test-abcdef01"


def hello(client: stepwise.Stepwise, **kwargs: Any) -> stepwise.Function:
    @client.create_function(
        fn_id="hello", trigger=stepwise.TriggerEvent(event="demo/hello"), **kwargs
    )
    async def handler(ctx: stepwise.Context) -> str:
        return "hi"

    return handler


async def test_get_introspection_in_dev_mode() -> None:
    client = dev_client()
    async with App(client, [hello(client)]) as app:
        response = await app.http.get("/api/inngest")
    assert response.status_code == 200
    assert response.headers["x-inngest-sdk"] == "stepwise-py:v0.1.0"
    assert loads(response.content) == {
        "schema_version": "2024-05-24",
        "function_count": 1,
        "has_event_key": False,
        "has_signing_key": False,
        "has_signing_key_fallback": False,
        "mode": "dev",
    }


async def test_get_introspection_authenticated_in_production() -> None:
    client = stepwise.Stepwise("demo", signing_key=KEY, event_key="evkey", is_production=True)
    async with App(client, [hello(client)]) as app:
        plain = loads((await app.http.get("/api/inngest")).content)
        signed = await app.http.get("/api/inngest", headers={"x-inngest-signature": sign(b"", KEY)})
    assert plain["mode"] == "cloud"
    assert "authentication_succeeded" not in plain
    body = loads(signed.content)
    assert body["authentication_succeeded"] is True
    assert body["app_id"] == "demo"
    assert body["has_event_key"] is True
    assert body["sdk_language"] == "py"
    assert body["signing_key_hash"] == hash_signing_key(KEY).removeprefix("signkey-test-")
    assert body["capabilities"] == {"trust_probe": "v1", "connect": "v1"}
    verify(signed.content, signed.headers["x-inngest-signature"], [KEY], canonicalize=False)


def register_server(
    seen: list[httpx.Request], *, status: int = 200, body: dict[str, Any] | None = None
) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body or {"ok": True, "modified": True})

    return httpx.MockTransport(handle)


async def test_put_registers_with_the_server() -> None:
    seen: list[httpx.Request] = []
    client = dev_client(register_server(seen))
    fn = hello(client, retries=3, name="Say hello")
    async with App(client, [fn]) as app:
        response = await app.http.put(
            "/api/inngest", params={"deployId": "d1"}, headers={"x-inngest-server-kind": "dev"}
        )
    assert response.status_code == 200
    assert response.headers["x-inngest-sync-kind"] == "out_of_band"
    assert loads(response.content) == {"message": "Successfully registered", "modified": True}
    (request,) = seen
    assert str(request.url) == "http://127.0.0.1:8288/fn/register?deployId=d1"
    assert request.headers["x-inngest-sdk"] == "stepwise-py:v0.1.0"
    assert request.headers["x-inngest-expected-server-kind"] == "dev"
    assert "authorization" not in request.headers
    serve_url = "http://app.test/api/inngest"
    assert loads(request.content) == {
        "url": serve_url,
        "deployType": "ping",
        "appName": "demo",
        "sdk": "py:v0.1.0",
        "v": "0.1",
        "framework": "starlette",
        "functions": [
            {
                "id": "demo-hello",
                "name": "Say hello",
                "triggers": [{"event": "demo/hello"}],
                "steps": {
                    "step": {
                        "id": "step",
                        "name": "step",
                        "runtime": {
                            "type": "http",
                            "url": f"{serve_url}?fnId=demo-hello&stepId=step",
                        },
                        "retries": {"attempts": 3},
                    }
                },
            }
        ],
        "capabilities": {"trust_probe": "v1", "connect": "v1"},
    }


async def test_put_reports_server_failure_and_honours_serve_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INNGEST_SERVE_ORIGIN", "https://public.example")
    seen: list[httpx.Request] = []
    failing = register_server(seen, status=400, body={"error": "bad config", "status": 400})
    client = dev_client(failing)
    async with App(client, [hello(client)]) as app:
        response = await app.http.put("/api/inngest")
        mismatch = await app.http.put("/api/inngest", headers={"x-inngest-server-kind": "cloud"})
    assert response.status_code == 400
    assert loads(response.content) == {"message": "bad config", "modified": False}
    assert loads(seen[0].content)["url"] == "https://public.example/api/inngest"
    assert mismatch.status_code == 400
    assert loads(mismatch.content)["code"] == "server_kind_mismatch"
    assert len(seen) == 1


async def test_sync_retries_with_the_fallback_key_and_sends_bearer() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers["authorization"] == f"Bearer {hash_signing_key(KEY)}":
            return httpx.Response(401, json={"error": "unauthorized"})
        return httpx.Response(200, json={"ok": True, "modified": False})

    client = stepwise.Stepwise(
        "demo",
        signing_key=KEY,
        signing_key_fallback=FALLBACK,
        transport=httpx.MockTransport(handle),
    )
    handler = ServeHandler(client, [hello(client)])
    assert await handler.sync("https://app.example/api/inngest") is False
    assert [r.headers["authorization"] for r in seen] == [
        f"Bearer {hash_signing_key(KEY)}",
        f"Bearer {hash_signing_key(FALLBACK)}",
    ]
    assert str(seen[0].url).startswith("https://api.inngest.com/fn/register")


async def test_sync_failure_raises_registration_error() -> None:
    client = dev_client(register_server([], status=500, body={"error": "down"}))
    handler = ServeHandler(client, [hello(client)])
    with pytest.raises(stepwise.RegistrationError, match="down"):
        await handler.sync("http://app.test/api/inngest")


async def test_production_post_requires_a_valid_signature() -> None:
    client = stepwise.Stepwise("demo", signing_key=KEY)
    assert client.is_production
    fn = hello(client)
    # Servers sign the JCS-canonical bytes they send.
    body = canonical_json(call_body())
    async with App(client, [fn]) as app:
        unsigned = await app.call(fn, body)
        forged = await app.call(
            fn, body, headers={"x-inngest-signature": sign(body, "signkey-test-99")}
        )
        signed = await app.call(fn, body, headers={"x-inngest-signature": sign(body, KEY)})
        by_fallback_only = stepwise.Stepwise("demo", signing_key=FALLBACK, signing_key_fallback=KEY)
        fallback_fn = hello(by_fallback_only)
    assert unsigned.status_code == 401
    assert loads(unsigned.content)["code"] == "sig_verification_failed"
    assert forged.status_code == 401
    assert signed.status_code == 200
    assert loads(signed.content) == "hi"
    verify(signed.content, signed.headers["x-inngest-signature"], [KEY], canonicalize=False)

    async with App(by_fallback_only, [fallback_fn]) as app:
        response = await app.call(
            fallback_fn, body, headers={"x-inngest-signature": sign(body, KEY)}
        )
    assert response.status_code == 200
    # The response is signed with the key that verified the request: here the fallback.
    verify(response.content, response.headers["x-inngest-signature"], [KEY], canonicalize=False)


async def test_trust_probe_and_bad_requests() -> None:
    client = stepwise.Stepwise("demo", signing_key=KEY)
    fn = hello(client)
    body = b'{"probe":true}'
    async with App(client, [fn]) as app:
        probe = await app.http.post(
            "/api/inngest",
            params={"probe": "trust"},
            content=body,
            headers={"x-inngest-signature": sign(body, KEY)},
        )
        bad_probe = await app.http.post(
            "/api/inngest",
            params={"probe": "trust"},
            content=body,
            headers={"x-inngest-signature": sign(body, "signkey-test-00")},
        )
        unknown = await app.http.post(
            "/api/inngest",
            params={"fnId": "demo-missing", "stepId": "step"},
            content=body,
            headers={"x-inngest-signature": sign(body, KEY)},
        )
    assert probe.status_code == 200
    assert probe.content == b""
    assert "x-inngest-signature" in probe.headers
    assert bad_probe.status_code == 401
    assert unknown.status_code == 404
    assert loads(unknown.content)["code"] == "function_not_found"


async def test_malformed_call_body_is_a_non_retriable_400() -> None:
    client = dev_client()
    fn = hello(client)
    async with App(client, [fn]) as app:
        response = await app.http.post(
            "/api/inngest", params={"fnId": fn.id, "stepId": "step"}, content=b"not json"
        )
    assert response.status_code == 400
    assert response.headers["x-inngest-no-retry"] == "true"
    assert loads(response.content)["code"] == "malformed_request"


async def test_use_api_fetches_events_and_steps_from_the_server() -> None:
    seen: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/batch"):
            return httpx.Response(200, json=[{"name": "big/event", "data": {"n": 7}, "ts": 1}])
        return httpx.Response(200, json={})

    client = dev_client(httpx.MockTransport(api))

    @client.create_function(fn_id="big", trigger=stepwise.TriggerEvent(event="big/event"))
    async def big(ctx: stepwise.Context) -> int:
        return int(ctx.event.data["n"])

    body = call_body(use_api=True)
    body["events"], body["steps"] = [], {}
    async with App(client, [big]) as app:
        response = await app.call(big, body)
    assert loads(response.content) == 7
    assert seen == [
        "/v0/runs/01HZZZZZZZZZZZZZZZZZZZZZZZ/batch",
        "/v0/runs/01HZZZZZZZZZZZZZZZZZZZZZZZ/actions",
    ]


async def test_production_without_signing_key_refuses_to_serve() -> None:
    client = stepwise.Stepwise("demo", is_production=True)
    with pytest.raises(stepwise.ConfigError):
        ServeHandler(client, [hello(client)])


async def test_fastapi_adapter_serves_the_same_endpoint() -> None:
    client = dev_client()
    fn = hello(client)
    api = FastAPI()
    fastapi_serve(api, client, [fn], serve_path="/x/inngest")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://app.test"
    ) as http:
        introspection = await http.get("/x/inngest")
        call = await http.post(
            "/x/inngest", params={"fnId": fn.id, "stepId": "step"}, content=dumps(call_body())
        )
    assert introspection.headers["x-inngest-framework"] == "fastapi"
    assert call.status_code == 200
    assert loads(call.content) == "hi"
