"""Client configuration and event sending against a mocked event API."""

from __future__ import annotations

import httpx
import pytest

import stepwise
from stepwise.protocol import loads
from stepwise.sdk.client import RetryPolicy

NO_WAIT = RetryPolicy(attempts=5, base_delay=0.0)


def event_api(replies: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply.status_code == 599:
            raise httpx.ConnectError("refused", request=request)
        return reply

    return httpx.MockTransport(handle)


def client_for(
    transport: httpx.MockTransport, *, event_key: str | None = None, env: str | None = None
) -> stepwise.Stepwise:
    client = stepwise.Stepwise(
        "demo", is_production=False, transport=transport, event_key=event_key, env=env
    )
    client.send_retry = NO_WAIT
    return client


async def test_send_posts_an_array_and_returns_ids() -> None:
    seen: list[httpx.Request] = []
    ok = httpx.Response(200, json={"ids": ["01A", "01B"], "status": 200})
    client = client_for(event_api([ok], seen), event_key="k1", env="branch-1")
    ids = await client.send(
        [stepwise.Event(name="a/x", data={"n": 1}, id=""), {"name": "a/y", "id": "mine"}]
    )
    assert ids == ["01A", "01B"]
    (request,) = seen
    assert str(request.url) == "http://127.0.0.1:8288/e/k1"
    assert request.headers["x-inngest-sdk"] == "stepwise-py:v0.1.0"
    assert request.headers["x-inngest-env"] == "branch-1"
    seed_ms, seed_entropy = request.headers["x-inngest-event-id-seed"].split(",")
    assert seed_ms.isdigit() and seed_entropy
    body = loads(request.content)
    assert [e["name"] for e in body] == ["a/x", "a/y"]
    assert "id" not in body[0]
    assert body[1]["id"] == "mine"
    assert body[1]["data"] == {}
    assert all(isinstance(e["ts"], int) for e in body)


async def test_send_retries_5xx_and_transport_errors_with_a_stable_seed() -> None:
    seen: list[httpx.Request] = []
    replies = [
        httpx.Response(502, json={"error": "bad gateway"}),
        httpx.Response(599),
        httpx.Response(200, json={"ids": ["01A"], "status": 200}),
    ]
    client = client_for(event_api(replies, seen))
    assert await client.send(stepwise.Event(name="a/x")) == ["01A"]
    assert len(seen) == 3
    assert len({r.headers["x-inngest-event-id-seed"] for r in seen}) == 1
    assert len({r.content for r in seen}) == 1


async def test_send_gives_up_after_five_attempts() -> None:
    seen: list[httpx.Request] = []
    client = client_for(event_api([httpx.Response(503, json={"error": "down"})], seen))
    with pytest.raises(stepwise.SendEventError, match="down"):
        await client.send({"name": "a/x"})
    assert len(seen) == 5


async def test_send_fails_at_once_on_4xx_with_the_server_message() -> None:
    seen: list[httpx.Request] = []
    refused = httpx.Response(
        400, json={"ids": [], "status": 400, "error": "event name is reserved for internal use"}
    )
    client = client_for(event_api([refused], seen))
    with pytest.raises(stepwise.SendEventError, match="reserved for internal use"):
        await client.send({"name": "inngest/x"})
    assert len(seen) == 1


def test_send_sync_behaves_like_send() -> None:
    seen: list[httpx.Request] = []
    replies = [
        httpx.Response(500, json={"error": "oops"}),
        httpx.Response(200, json={"ids": ["01A"], "status": 200}),
    ]
    client = client_for(event_api(replies, seen))
    assert client.send_sync({"name": "a/x", "data": {"k": "v"}}) == ["01A"]
    assert len(seen) == 2
    assert seen[0].headers["x-inngest-event-id-seed"] == seen[1].headers["x-inngest-event-id-seed"]


def test_send_rejects_events_without_a_name() -> None:
    client = client_for(event_api([httpx.Response(200)], []))
    with pytest.raises(stepwise.ConfigError):
        client.send_sync({"data": {}})


def test_mode_and_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    dev = stepwise.Stepwise("a")
    assert not dev.is_production
    assert dev.config.api_base_url == dev.config.event_api_base_url == "http://127.0.0.1:8288"
    assert dev.config.event_key == "NO_EVENT_KEY_SET"

    monkeypatch.setenv("INNGEST_SIGNING_KEY", "signkey-prod-12")
    prod = stepwise.Stepwise("a")
    assert prod.is_production
    assert prod.config.api_base_url == "https://api.inngest.com"
    assert prod.config.event_api_base_url == "https://inn.gs"
    assert prod.config.event_key is None

    monkeypatch.setenv("INNGEST_DEV", "http://localhost:9999/")
    assert stepwise.Stepwise("a").config.api_base_url == "http://localhost:9999"
    assert not stepwise.Stepwise("a").is_production

    monkeypatch.setenv("INNGEST_DEV", "0")
    monkeypatch.setenv("INNGEST_BASE_URL", "http://inngest.internal:8288")
    monkeypatch.setenv("INNGEST_EVENT_API_BASE_URL", "http://events.internal")
    configured = stepwise.Stepwise("a")
    assert configured.is_production
    assert configured.config.api_base_url == "http://inngest.internal:8288"
    assert configured.config.event_api_base_url == "http://events.internal"
    assert stepwise.Stepwise("a", is_production=False).config.event_key == "NO_EVENT_KEY_SET"


async def test_production_send_without_event_key_is_a_config_error() -> None:
    client = stepwise.Stepwise("a", signing_key="signkey-prod-12")
    with pytest.raises(stepwise.ConfigError, match="event key"):
        await client.send({"name": "a/x"})


def test_function_options_are_validated() -> None:
    client = stepwise.Stepwise("a")
    trigger = stepwise.TriggerEvent(event="x")
    with pytest.raises(stepwise.ConfigError):
        client.create_function(fn_id="f", trigger=trigger, retries=21)
    with pytest.raises(stepwise.ConfigError):
        client.create_function(fn_id="f", trigger=[trigger] * 11)
    with pytest.raises(stepwise.ConfigError):
        client.create_function(fn_id="f", trigger=[])

    @client.create_function(
        fn_id="cron", trigger=[stepwise.TriggerCron(cron="*/5 * * * *", jitter="10s"), trigger]
    )
    def cron(ctx: stepwise.SyncContext) -> None:
        return None

    config = cron.get_config("http://h/api/inngest")
    assert config["id"] == "a-cron"
    assert config["triggers"] == [{"cron": "*/5 * * * *", "jitter": "10s"}, {"event": "x"}]
    assert "retries" not in config["steps"]["step"]
