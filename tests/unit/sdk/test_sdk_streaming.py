"""Streamed replies (``streaming=``): 201 at once, keep-alive spaces, then one JSON chunk
holding the real status, headers and body (protocol reference §3.4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sdk_support import App, call_body, dev_client

import stepwise
from stepwise.adapters.starlette import app as starlette_app
from stepwise.protocol import canonical_json, dumps, loads, sign, verify
from stepwise.sdk import handler as handler_module
from stepwise.sdk.handler import ServeHandler, ServeResponse

KEY = "signkey-test-12345678"


def greeter(client: stepwise.Stepwise, gate: asyncio.Event | None = None) -> stepwise.Function:
    @client.create_function(fn_id="greet", trigger=stepwise.TriggerEvent(event="demo/greet"))
    async def greet(ctx: stepwise.Context) -> str:
        async def slow() -> str:
            if gate is not None:
                await gate.wait()
            return "hello"

        return await ctx.step.run("slow", slow)

    return greet


def failing(client: stepwise.Stepwise) -> stepwise.Function:
    @client.create_function(fn_id="fails", trigger=stepwise.TriggerEvent(event="demo/fails"))
    async def fails(ctx: stepwise.Context) -> None:
        raise stepwise.NonRetriableError("no way")

    return fails


async def call(
    handler: ServeHandler, fn: stepwise.Function, body: bytes, headers: dict[str, str] | None = None
) -> ServeResponse:
    return await handler.handle(
        "POST",
        f"http://app.test/api/inngest?fnId={fn.id}&stepId=step",
        {"content-type": "application/json", **(headers or {})},
        body,
    )


async def final_chunk(stream: AsyncIterator[bytes]) -> tuple[int, dict[str, Any]]:
    """Read a streamed reply to its end: how many keep-alive spaces, and the final chunk."""
    spaces = 0
    async for chunk in stream:
        if chunk == b" ":
            spaces += 1
            continue
        final = loads(chunk)
        assert isinstance(final, dict)
        return spaces, final
    raise AssertionError("the stream ended without its final chunk")


async def test_a_forced_stream_answers_201_then_spaces_then_the_real_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handler_module, "KEEPALIVE_INTERVAL_S", 0.01)
    client = dev_client()
    gate = asyncio.Event()
    fn = greeter(client, gate)
    handler = ServeHandler(client, [fn], streaming="force", can_stream=True)

    response = await call(handler, fn, dumps(call_body()))
    assert response.status == 201 and response.body == b""
    assert response.headers["x-inngest-sdk"] == "stepwise-py:v0.1.0"
    assert response.headers["content-type"] == "application/json"
    assert "x-inngest-signature" not in response.headers
    assert response.stream is not None
    stream = aiter(response.stream)
    # The step is still waiting on the gate: the stream keeps the connection busy meanwhile.
    assert await anext(stream) == b" "
    assert await anext(stream) == b" "
    gate.set()
    _, final = await final_chunk(stream)

    assert final["status"] == 206
    assert final["version"] == 2
    assert final["headers"]["x-inngest-req-version"] == "2"
    assert final["headers"]["x-inngest-no-retry"] == "false"
    (op,) = loads(final["body"])
    assert (op["op"], op["data"]) == ("StepRun", "hello")


async def test_the_final_chunk_is_signed_over_the_body_it_carries() -> None:
    client = stepwise.Stepwise("demo", signing_key=KEY)
    fn = greeter(client)
    handler = ServeHandler(client, [fn], streaming="force", can_stream=True)
    body = canonical_json(call_body())

    response = await call(handler, fn, body, {"x-inngest-signature": sign(body, KEY)})
    assert response.status == 201 and response.stream is not None
    assert "x-inngest-signature" not in response.headers
    _, final = await final_chunk(response.stream)
    # What the server acts on is the body's bytes, and exactly those are signed.
    verify(
        final["body"].encode(),
        final["headers"]["x-inngest-signature"],
        [KEY],
        canonicalize=False,
    )


async def test_a_function_error_travels_in_the_final_chunk() -> None:
    client = dev_client()
    fn = failing(client)
    handler = ServeHandler(client, [fn], streaming="force", can_stream=True)
    response = await call(handler, fn, dumps(call_body()))
    assert response.status == 201 and response.stream is not None
    _, final = await final_chunk(response.stream)
    assert final["status"] == 500
    assert final["headers"]["x-inngest-no-retry"] == "true"
    assert loads(final["body"])["message"] == "no way"


async def test_refusals_are_not_streamed() -> None:
    client = stepwise.Stepwise("demo", signing_key=KEY)
    fn = greeter(client)
    handler = ServeHandler(client, [fn], streaming="force", can_stream=True)
    body = canonical_json(call_body())
    unsigned = await call(handler, fn, body)
    assert (unsigned.status, unsigned.stream) == (401, None)

    dev = dev_client()
    dev_fn = greeter(dev)
    dev_handler = ServeHandler(dev, [dev_fn], streaming="force", can_stream=True)
    malformed = await call(dev_handler, dev_fn, b"not json")
    assert (malformed.status, malformed.stream) == (400, None)
    probe = await dev_handler.handle("POST", "http://app.test/api/inngest?probe=trust", {}, b"{}")
    assert (probe.status, probe.stream) == (200, None)


async def test_a_call_whose_server_went_away_still_runs_to_its_end() -> None:
    client = dev_client()
    gate = asyncio.Event()
    ran: list[str] = []

    @client.create_function(fn_id="work", trigger=stepwise.TriggerEvent(event="demo/work"))
    async def work(ctx: stepwise.Context) -> str:
        async def step() -> str:
            await gate.wait()
            ran.append("step")
            return "done"

        return await ctx.step.run("step", step)

    handler = ServeHandler(client, [work], streaming="force", can_stream=True)
    response = await call(handler, work, dumps(call_body()))
    assert response.stream is not None
    stream = aiter(response.stream)
    assert await anext(stream) == b" "
    await stream.aclose()  # type: ignore[attr-defined]  # the server hung up
    gate.set()
    await asyncio.gather(*handler._in_flight)
    assert ran == ["step"]


async def test_allow_streams_only_where_the_adapter_can() -> None:
    client = dev_client()
    fn = greeter(client)
    plain = ServeHandler(client, [fn], streaming="allow", can_stream=False)
    response = await call(plain, fn, dumps(call_body()))
    assert (response.status, response.stream) == (206, None)
    streams = ServeHandler(client, [fn], streaming="allow", can_stream=True)
    assert (await call(streams, fn, dumps(call_body()))).status == 201
    with pytest.raises(stepwise.ConfigError, match="cannot"):
        ServeHandler(client, [fn], streaming="force", can_stream=False)


@pytest.mark.parametrize(
    ("value", "streams"),
    [("allow", True), ("force", True), ("true", True), ("false", False), ("disable", False)],
)
async def test_inngest_streaming_turns_streaming_on_through_an_adapter(
    monkeypatch: pytest.MonkeyPatch, value: str, streams: bool
) -> None:
    monkeypatch.setenv("INNGEST_STREAMING", value)
    client = dev_client()
    fn = greeter(client)
    async with App(client, [fn]) as app:
        response = await app.call(fn, call_body())
    if not streams:
        assert response.status_code == 206
        return
    assert response.status_code == 201
    assert response.content.startswith(b" ")
    final = loads(response.content)
    assert final["status"] == 206
    assert loads(final["body"])[0]["data"] == "hello"


async def test_an_unknown_streaming_value_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INNGEST_STREAMING", "sometimes")
    client = dev_client()
    with pytest.raises(stepwise.ConfigError, match="INNGEST_STREAMING"):
        starlette_app(client, [greeter(client)])
    with pytest.raises(stepwise.ConfigError, match="streaming"):
        ServeHandler(client, [greeter(client)], streaming="always", can_stream=True)  # type: ignore[arg-type]


async def test_the_starlette_adapter_sends_the_stream_as_it_comes() -> None:
    client = dev_client()
    fn = greeter(client)
    asgi = starlette_app(client, [fn], streaming="force")
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
        response = await http.post(
            "/api/inngest", params={"fnId": fn.id, "stepId": "step"}, content=dumps(call_body())
        )
    assert response.status_code == 201
    assert response.headers["x-inngest-sdk"] == "stepwise-py:v0.1.0"
    assert loads(response.content)["status"] == 206
