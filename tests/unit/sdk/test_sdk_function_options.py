"""cancel_on, timeouts and on_failure in the synced config; on_failure routing; signals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sdk_support import SERVE, App, call_body, dev_client

import stepwise
from stepwise.protocol import hash_signing_key, loads
from stepwise.sdk.registration import register_body

KEY = "signkey-test-12345678"


def configs(client: stepwise.Stepwise, functions: list[stepwise.Function]) -> list[dict[str, Any]]:
    handler = stepwise.ServeHandler(client, functions)
    body = register_body(
        client, list(handler.functions.values()), serve_url=SERVE, framework="starlette"
    )
    return list(body["functions"])


def test_cancel_on_and_timeouts_in_the_function_config() -> None:
    client = dev_client()

    @client.create_function(
        fn_id="cancellable",
        trigger=stepwise.TriggerEvent(event="order/placed"),
        cancel_on=[
            stepwise.CancelOn(event="order/cancelled", match="data.order_id", timeout="1h"),
            stepwise.CancelOn(event="user/deleted", if_="async.data.id == event.data.user"),
            stepwise.CancelOn(event="shop/closed", timeout=timedelta(days=2)),
        ],
        timeouts=stepwise.Timeouts(start="30s", finish=timedelta(minutes=90)),
    )
    async def cancellable(ctx: stepwise.Context) -> None:
        return None

    (config,) = configs(client, [cancellable])
    assert config["cancel"] == [
        {
            "event": "order/cancelled",
            "if": "event.data.order_id == async.data.order_id",
            "timeout": "1h",
        },
        {"event": "user/deleted", "if": "async.data.id == event.data.user"},
        {"event": "shop/closed", "timeout": "2d"},
    ]
    assert config["timeouts"] == {"start": "30s", "finish": "90m"}


def test_single_cancel_on_and_partial_timeouts() -> None:
    client = dev_client()

    @client.create_function(
        fn_id="one",
        trigger=stepwise.TriggerEvent(event="a"),
        cancel_on=stepwise.CancelOn(event="b"),
        timeouts=stepwise.Timeouts(finish=3600),
    )
    def one(ctx: stepwise.SyncContext) -> None:
        return None

    (config,) = configs(client, [one])
    assert config["cancel"] == [{"event": "b"}]
    assert config["timeouts"] == {"finish": "1h"}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: stepwise.CancelOn(event=""), "event name"),
        (lambda: stepwise.CancelOn(event="a", if_="x", match="y"), "not both"),
        (lambda: stepwise.CancelOn(event="a", timeout="367d"), "366 days"),
        (lambda: stepwise.CancelOn(event="a", timeout="later"), "invalid duration"),
        (lambda: stepwise.Timeouts(), "start, finish or both"),
        (lambda: stepwise.Timeouts(start=timedelta(days=400)), "366 days"),
        (lambda: stepwise.Timeouts(finish=True), "not a bool"),
        (lambda: stepwise.Timeouts(finish=float("inf")), "finite"),
    ],
)
def test_option_objects_are_validated(build: Any, message: str) -> None:
    with pytest.raises(stepwise.ConfigError, match=message):
        build()


def test_create_function_validates_the_new_options() -> None:
    client = dev_client()
    trigger = stepwise.TriggerEvent(event="a")
    too_many = [stepwise.CancelOn(event=f"e{i}") for i in range(6)]
    with pytest.raises(stepwise.ConfigError, match="at most 5"):
        client.create_function(fn_id="f", trigger=trigger, cancel_on=too_many)
    with pytest.raises(stepwise.ConfigError, match="CancelOn objects"):
        client.create_function(fn_id="f", trigger=trigger, cancel_on=[{"event": "x"}])  # type: ignore[list-item]
    with pytest.raises(stepwise.ConfigError, match="Timeouts object"):
        client.create_function(fn_id="f", trigger=trigger, timeouts={"start": "1s"})  # type: ignore[arg-type]
    with pytest.raises(stepwise.ConfigError, match="on_failure must be callable"):
        client.create_function(fn_id="f", trigger=trigger, on_failure="nope")  # type: ignore[arg-type]


def with_failure_handler(client: stepwise.Stepwise, seen: list[Any]) -> stepwise.Function:
    async def compensate(ctx: stepwise.Context) -> str:
        seen.append(ctx.event)
        return "compensated"

    @client.create_function(
        fn_id="charge",
        trigger=stepwise.TriggerEvent(event="order/placed"),
        name="Charge card",
        retries=2,
        on_failure=compensate,
    )
    async def charge(ctx: stepwise.Context) -> None:
        raise ValueError("card declined")

    return charge


def test_on_failure_is_synced_as_a_function_of_its_own() -> None:
    client = dev_client()
    charge = with_failure_handler(client, [])
    main, failure = configs(client, [charge])
    assert main["id"] == "demo-charge"
    assert failure == {
        "id": "demo-charge-failure",
        "name": "Charge card (failure)",
        "triggers": [
            {
                "event": "inngest/function.failed",
                "expression": "event.data.function_id == 'demo-charge'",
            }
        ],
        "steps": {
            "step": {
                "id": "step",
                "name": "step",
                "runtime": {
                    "type": "http",
                    "url": f"{SERVE}?fnId=demo-charge-failure&stepId=step",
                },
                "retries": {"attempts": 0},
            }
        },
    }


async def test_calls_for_the_failure_id_reach_the_failure_handler() -> None:
    client = dev_client()
    seen: list[Any] = []
    charge = with_failure_handler(client, seen)
    original = {"name": "order/placed", "data": {"order": 9}, "id": "01HORDER", "ts": 5}
    failed_event = {
        "name": "inngest/function.failed",
        "data": {
            "function_id": "demo-charge",
            "run_id": "01HRUN",
            "event": original,
            "error": {"name": "ValueError", "message": "card declined"},
        },
        "id": "01HRUN",
        "ts": 6,
    }
    assert charge.on_failure is not None
    async with App(client, [charge]) as app:
        introspection = loads((await app.http.get("/api/inngest")).content)
        failed = await app.call(charge, call_body())
        response = await app.call(charge.on_failure, call_body(event=failed_event))
    assert introspection["function_count"] == 2
    assert failed.status_code == 500
    assert response.status_code == 200
    assert loads(response.content) == "compensated"
    event = seen[0]
    assert event.name == "inngest/function.failed"
    assert event.data["event"] == original
    assert event.data["error"]["message"] == "card declined"


async def test_a_def_failure_handler_gets_a_sync_context() -> None:
    client = dev_client()
    seen: list[str] = []

    def on_failure(ctx: stepwise.SyncContext) -> None:
        seen.append(type(ctx).__name__)

    @client.create_function(
        fn_id="f", trigger=stepwise.TriggerEvent(event="a"), on_failure=on_failure
    )
    async def f(ctx: stepwise.Context) -> None:
        return None

    assert f.on_failure is not None
    async with App(client, [f]) as app:
        response = await app.call(f.on_failure, call_body())
    assert response.status_code == 200
    assert seen == ["SyncContext"]


def test_failure_id_colliding_with_another_function_is_refused() -> None:
    client = dev_client()
    charge = with_failure_handler(client, [])

    @client.create_function(fn_id="charge-failure", trigger=stepwise.TriggerEvent(event="b"))
    async def clash(ctx: stepwise.Context) -> None:
        return None

    with pytest.raises(stepwise.ConfigError, match="demo-charge-failure"):
        stepwise.ServeHandler(client, [charge, clash])


def signal_api(
    seen: list[httpx.Request], status: int = 200, body: Any = None
) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            status, json=body if body is not None else {"data": {"run_id": "01HRUN"}}
        )

    return httpx.MockTransport(handle)


async def test_send_signal_posts_to_the_api_with_the_hashed_key() -> None:
    seen: list[httpx.Request] = []
    client = stepwise.Stepwise(
        "demo",
        is_production=True,
        signing_key=KEY,
        api_base_url="http://api.test",
        transport=signal_api(seen),
    )
    run_id = await client.send_signal("order-42", {"paid": True})
    assert run_id == "01HRUN"
    request = seen[0]
    assert request.method == "POST"
    assert str(request.url) == "http://api.test/v1/signals"
    assert loads(request.content) == {"signal": "order-42", "data": {"paid": True}}
    assert request.headers["authorization"] == f"Bearer {hash_signing_key(KEY)}"


def test_send_signal_sync_without_a_key_sends_no_authorization() -> None:
    seen: list[httpx.Request] = []
    client = dev_client(signal_api(seen, body={}))
    assert client.send_signal_sync("s") is None
    assert "authorization" not in seen[0].headers
    assert loads(seen[0].content) == {"signal": "s", "data": None}


async def test_send_signal_refused_is_an_api_error() -> None:
    seen: list[httpx.Request] = []
    refusal = {"error": "no run is waiting for signal s", "code": "signal_not_found"}
    client = dev_client(signal_api(seen, status=404, body=refusal))
    with pytest.raises(stepwise.ApiError) as caught:
        await client.send_signal("s", 1)
    assert caught.value.status == 404
    assert caught.value.code == "signal_not_found"
    assert "no run is waiting for signal s" in caught.value.message
    with pytest.raises(stepwise.ConfigError):
        await client.send_signal("")


async def test_send_signal_unreachable_server_is_an_api_error() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = dev_client(httpx.MockTransport(down))
    with pytest.raises(stepwise.ApiError) as caught:
        await client.send_signal("s")
    assert caught.value.code == "api_unreachable"
