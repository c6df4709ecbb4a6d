"""In-band sync: the server's PUT says ``X-Inngest-Sync-Kind: in_band`` and the app answers
with its config instead of posting it to ``/fn/register`` (protocol reference §2.2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sdk_support import App, dev_client

import stepwise
from stepwise.protocol import canonical_json, hash_signing_key, loads, sign, verify

KEY = "signkey-test-12345678"
IN_BAND = {"x-inngest-sync-kind": "in_band"}


def hello(client: stepwise.Stepwise) -> stepwise.Function:
    @client.create_function(
        fn_id="hello", trigger=stepwise.TriggerEvent(event="demo/hello"), retries=2
    )
    async def handler(ctx: stepwise.Context) -> str:
        return "hi"

    return handler


def no_register(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500, json={"error": "in-band sync must not register"})

    return httpx.MockTransport(handle)


def production(seen: list[httpx.Request], **kwargs: Any) -> stepwise.Stepwise:
    return stepwise.Stepwise(
        "demo",
        signing_key=KEY,
        event_key="evkey",
        is_production=True,
        transport=no_register(seen),
        **kwargs,
    )


async def test_a_signed_in_band_put_is_answered_with_the_config_signed() -> None:
    seen: list[httpx.Request] = []
    client = production(seen, env="staging")
    body = canonical_json({"url": "https://public.example/api/inngest"})
    headers = {**IN_BAND, "x-inngest-signature": sign(body, KEY), "x-inngest-server-kind": "cloud"}
    async with App(client, [hello(client)]) as app:
        response = await app.http.put("/api/inngest", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-inngest-sync-kind"] == "in_band"
    verify(response.content, response.headers["x-inngest-signature"], [KEY], canonicalize=False)
    assert seen == []  # nothing was posted to /fn/register
    answer = loads(response.content)
    url = "https://public.example/api/inngest"
    assert answer["app_id"] == "demo"
    assert answer["url"] == url
    assert answer["env"] == "staging"
    assert answer["framework"] == "starlette"
    assert (answer["sdk"], answer["sdk_language"], answer["sdk_version"]) == (
        "py:v0.1.0",
        "py",
        "0.1.0",
    )
    assert answer["capabilities"] == {"trust_probe": "v1", "connect": "v1"}
    (config,) = answer["functions"]
    assert config["id"] == "demo-hello"
    assert config["steps"]["step"]["runtime"] == {
        "type": "http",
        "url": f"{url}?fnId=demo-hello&stepId=step",
    }
    assert config["steps"]["step"]["retries"] == {"attempts": 2}
    inspection = answer["inspection"]
    assert inspection["authentication_succeeded"] is True
    assert inspection["signing_key_hash"] == hash_signing_key(KEY).removeprefix("signkey-test-")


@pytest.mark.parametrize("signed_with", [None, "signkey-test-99"], ids=["unsigned", "forged"])
async def test_an_unsigned_or_forged_in_band_put_is_refused_in_production(
    signed_with: str | None,
) -> None:
    seen: list[httpx.Request] = []
    client = production(seen)
    headers = dict(IN_BAND)
    if signed_with is not None:
        headers["x-inngest-signature"] = sign(b'{"url":"https://x.example"}', signed_with)
    async with App(client, [hello(client)]) as app:
        response = await app.http.put(
            "/api/inngest", content=b'{"url":"https://x.example"}', headers=headers
        )
    assert response.status_code == 401
    assert loads(response.content)["code"] == "sig_verification_failed"
    assert "functions" not in loads(response.content)
    assert seen == []


async def test_a_bad_in_band_body_is_a_400() -> None:
    seen: list[httpx.Request] = []
    client = production(seen)
    async with App(client, [hello(client)]) as app:
        for body in (b"[]", b'{"url":5}', b"not json"):
            headers = {**IN_BAND, "x-inngest-signature": sign(body, KEY)}
            response = await app.http.put("/api/inngest", content=body, headers=headers)
            assert response.status_code == 400, body
            assert loads(response.content)["code"] == "invalid_request"


async def test_in_dev_mode_the_answer_is_unsigned_and_unauthenticated() -> None:
    seen: list[httpx.Request] = []
    client = dev_client(no_register(seen))
    body = b'{"url":"http://127.0.0.1:3000/api/inngest"}'
    async with App(client, [hello(client)]) as app:
        response = await app.http.put("/api/inngest", content=body, headers=IN_BAND)
    assert response.status_code == 200
    assert "x-inngest-signature" not in response.headers
    answer = loads(response.content)
    assert answer["url"] == "http://127.0.0.1:3000/api/inngest"
    assert answer["inspection"]["mode"] == "dev"
    assert "authentication_succeeded" not in answer["inspection"]
    assert seen == []


async def test_in_band_sync_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """INNGEST_ALLOW_IN_BAND_SYNC=false: the app registers out of band whatever it is asked."""
    monkeypatch.setenv("INNGEST_ALLOW_IN_BAND_SYNC", "false")
    seen: list[httpx.Request] = []

    def register(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True, "modified": True})

    client = dev_client(httpx.MockTransport(register))
    async with App(client, [hello(client)]) as app:
        response = await app.http.put("/api/inngest", content=b'{"url":"x"}', headers=IN_BAND)
    assert response.status_code == 200
    assert response.headers["x-inngest-sync-kind"] == "out_of_band"
    assert [r.url.path for r in seen] == ["/fn/register"]
    assert loads(seen[0].content)["appName"] == "demo"
