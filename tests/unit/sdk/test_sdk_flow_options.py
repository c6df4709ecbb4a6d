"""Flow-control options of create_function: validation and their keys in the synced config."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sdk_support import SERVE, App, dev_client

import stepwise
from stepwise.protocol import loads
from stepwise.sdk.options import Duration
from stepwise.sdk.registration import register_body

FLOW_KEYS = {
    "concurrency",
    "throttle",
    "rateLimit",
    "idempotency",
    "debounce",
    "batchEvents",
    "priority",
    "singleton",
}
TRIGGER = stepwise.TriggerEvent(event="shop/order.placed")


def config_of(**options: Any) -> dict[str, Any]:
    """The function config a ``create_function(**options)`` function syncs."""
    client = dev_client()

    @client.create_function(fn_id="flow", trigger=TRIGGER, **options)
    async def flow(ctx: stepwise.Context) -> None:
        return None

    handler = stepwise.ServeHandler(client, [flow])
    body = register_body(
        client, list(handler.functions.values()), serve_url=SERVE, framework="starlette"
    )
    (config,) = body["functions"]
    assert isinstance(config, dict)
    return config


def test_exported_from_the_package() -> None:
    for name in (
        "Batch",
        "Concurrency",
        "Debounce",
        "Priority",
        "RateLimit",
        "Singleton",
        "Throttle",
    ):
        assert name in stepwise.__all__
        assert getattr(stepwise, name) is getattr(stepwise.sdk, name)


def test_no_flow_control_keys_by_default() -> None:
    config = config_of()
    assert not FLOW_KEYS & config.keys()
    assert set(config) == {"id", "name", "triggers", "steps"}


@pytest.mark.parametrize(
    ("options", "key", "expected"),
    [
        ({"concurrency": 5}, "concurrency", [{"limit": 5}]),
        ({"concurrency": stepwise.Concurrency(limit=3)}, "concurrency", [{"limit": 3}]),
        (
            {"concurrency": stepwise.Concurrency(limit=1, key="event.data.user_id")},
            "concurrency",
            [{"limit": 1, "key": "event.data.user_id"}],
        ),
        (
            {
                "concurrency": [
                    10,
                    stepwise.Concurrency(limit=2, key="event.data.account", scope="account"),
                ]
            },
            "concurrency",
            [{"limit": 10}, {"limit": 2, "key": "event.data.account", "scope": "account"}],
        ),
        (
            {"concurrency": (stepwise.Concurrency(limit=4, key="'all'", scope="env"),)},
            "concurrency",
            [{"limit": 4, "key": "'all'", "scope": "env"}],
        ),
        (
            {"throttle": stepwise.Throttle(limit=10, period="1m")},
            "throttle",
            {"limit": 10, "period": "1m"},
        ),
        (
            {
                "throttle": stepwise.Throttle(
                    limit=1, period=timedelta(hours=2), burst=3, key="event.data.shop"
                )
            },
            "throttle",
            {"limit": 1, "period": "2h", "burst": 3, "key": "event.data.shop"},
        ),
        (
            {"rate_limit": stepwise.RateLimit(limit=5, period=3600)},
            "rateLimit",
            {"limit": 5, "period": "1h"},
        ),
        (
            {"rate_limit": stepwise.RateLimit(limit=1, period="24h", key="event.data.id")},
            "rateLimit",
            {"limit": 1, "period": "1d", "key": "event.data.id"},
        ),
        ({"idempotency": "event.data.order_id"}, "idempotency", "event.data.order_id"),
        (
            {"debounce": stepwise.Debounce(period="30s")},
            "debounce",
            {"period": "30s"},
        ),
        (
            {"debounce": stepwise.Debounce(period=90.0, key="event.data.doc", timeout="7d")},
            "debounce",
            {"period": "90s", "key": "event.data.doc", "timeout": "7d"},
        ),
        (
            {"batch_events": stepwise.Batch(max_size=100, timeout="5s")},
            "batchEvents",
            {"maxSize": 100, "timeout": "5s"},
        ),
        (
            {
                "batch_events": stepwise.Batch(
                    max_size=2,
                    timeout=timedelta(minutes=1),
                    key="event.data.user",
                    if_="event.data.kind == 'bulk'",
                )
            },
            "batchEvents",
            {
                "maxSize": 2,
                "timeout": "1m",
                "key": "event.data.user",
                "if": "event.data.kind == 'bulk'",
            },
        ),
        (
            {"priority": stepwise.Priority(run="event.data.plan == 'pro' ? 120 : 0")},
            "priority",
            {"run": "event.data.plan == 'pro' ? 120 : 0"},
        ),
        ({"singleton": stepwise.Singleton()}, "singleton", {"mode": "skip"}),
        (
            {"singleton": stepwise.Singleton(key="event.data.user", mode="cancel")},
            "singleton",
            {"key": "event.data.user", "mode": "cancel"},
        ),
    ],
)
def test_each_option_in_the_function_config(
    options: dict[str, Any], key: str, expected: Any
) -> None:
    config = config_of(**options)
    assert config[key] == expected
    # Only the one option's key is added.
    assert FLOW_KEYS & config.keys() == {key}


def test_options_combine_and_leave_the_rest_of_the_config_alone() -> None:
    config = config_of(
        retries=2,
        concurrency=[
            stepwise.Concurrency(limit=5),
            stepwise.Concurrency(limit=1, key="event.data.u"),
        ],
        throttle=stepwise.Throttle(limit=20, period="1m", burst=5),
        idempotency="event.data.order_id",
        debounce=stepwise.Debounce(period="10s", timeout="1m"),
        priority=stepwise.Priority(run="event.data.vip ? 60 : 0"),
        singleton=stepwise.Singleton(mode="cancel"),
        cancel_on=stepwise.CancelOn(event="shop/order.cancelled", match="data.id"),
    )
    assert config["steps"]["step"]["retries"] == {"attempts": 2}
    assert config["concurrency"] == [{"limit": 5}, {"limit": 1, "key": "event.data.u"}]
    assert config["throttle"] == {"limit": 20, "period": "1m", "burst": 5}
    assert config["idempotency"] == "event.data.order_id"
    assert config["debounce"] == {"period": "10s", "timeout": "1m"}
    assert config["priority"] == {"run": "event.data.vip ? 60 : 0"}
    assert config["singleton"] == {"mode": "cancel"}
    assert config["cancel"] == [
        {"event": "shop/order.cancelled", "if": "event.data.id == async.data.id"}
    ]


def test_batching_combines_with_limits() -> None:
    config = config_of(
        batch_events=stepwise.Batch(max_size=50, timeout="10s"),
        concurrency=2,
        throttle=stepwise.Throttle(limit=1, period="1s"),
        rate_limit=stepwise.RateLimit(limit=100, period="1h"),
        timeouts=stepwise.Timeouts(finish="1h"),
    )
    assert config["batchEvents"] == {"maxSize": 50, "timeout": "10s"}
    assert config["concurrency"] == [{"limit": 2}]
    assert config["rateLimit"] == {"limit": 100, "period": "1h"}


@pytest.mark.parametrize(
    ("period", "wire"),
    [
        ("1h30m", "90m"),
        ("300ms", "1s"),
        (45, "45s"),
        (2.5, "3s"),
        (timedelta(days=1), "1d"),
        (timedelta(seconds=3601), "3601s"),
    ],
)
def test_durations_are_normalized(period: Duration, wire: str) -> None:
    assert stepwise.Throttle(limit=1, period=period).to_wire()["period"] == wire


async def test_flow_options_reach_the_server_on_put() -> None:
    seen: list[httpx.Request] = []

    def register(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True, "modified": True})

    client = dev_client(httpx.MockTransport(register))

    @client.create_function(
        fn_id="digest",
        trigger=TRIGGER,
        concurrency=stepwise.Concurrency(limit=2, key="event.data.user", scope="env"),
        batch_events=stepwise.Batch(max_size=10, timeout="30s", key="event.data.user"),
        rate_limit=stepwise.RateLimit(limit=3, period="6h"),
    )
    async def digest(ctx: stepwise.Context) -> None:
        return None

    async with App(client, [digest]) as app:
        response = await app.http.put("/api/inngest")
    assert response.status_code == 200
    (request,) = seen
    (config,) = loads(request.content)["functions"]
    assert config["concurrency"] == [{"limit": 2, "key": "event.data.user", "scope": "env"}]
    assert config["batchEvents"] == {"maxSize": 10, "timeout": "30s", "key": "event.data.user"}
    assert config["rateLimit"] == {"limit": 3, "period": "6h"}


def test_option_objects_are_frozen() -> None:
    throttle = stepwise.Throttle(limit=1, period="1s")
    with pytest.raises(dataclasses.FrozenInstanceError):
        throttle.limit = 2  # type: ignore[misc]
    assert stepwise.Concurrency(limit=2) == stepwise.Concurrency(limit=2, scope="fn")
    assert hash(stepwise.Singleton()) == hash(stepwise.Singleton(mode="skip"))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        # Limits are ints >= 1, never bools.
        (lambda: stepwise.Concurrency(limit=0), "at least 1"),
        (lambda: stepwise.Concurrency(limit=True), "must be an int"),
        (lambda: stepwise.Concurrency(limit=2.0), "must be an int"),  # type: ignore[arg-type]
        (lambda: stepwise.Concurrency(limit=1, scope="app"), "'fn', 'env' or 'account'"),  # type: ignore[arg-type]
        (lambda: stepwise.Concurrency(limit=1, scope="account"), "needs a key"),
        (lambda: stepwise.Concurrency(limit=1, key=""), "non-empty CEL"),
        (lambda: stepwise.Throttle(limit=0, period="1s"), "at least 1"),
        (lambda: stepwise.Throttle(limit=False, period="1s"), "must be an int"),
        (lambda: stepwise.Throttle(limit=1, period="1s", burst=0), "burst must be at least 1"),
        (lambda: stepwise.Throttle(limit=1, period="1s", burst=True), "must be an int"),
        (lambda: stepwise.Throttle(limit=1, period=0), "longer than zero"),
        (lambda: stepwise.Throttle(limit=1, period="soon"), "invalid duration"),
        (lambda: stepwise.Throttle(limit=1, period=-5), "negative"),
        (lambda: stepwise.Throttle(limit=1, period=True), "not a bool"),
        (lambda: stepwise.Throttle(limit=1, period="1s", key="  "), "non-empty CEL"),
        (lambda: stepwise.RateLimit(limit=-1, period="1h"), "at least 1"),
        (lambda: stepwise.RateLimit(limit=1, period="25h"), "at most 1d"),
        (lambda: stepwise.RateLimit(limit=1, period=timedelta(hours=24, seconds=1)), "at most"),
        (lambda: stepwise.RateLimit(limit=1, period="0"), "longer than zero"),
        (lambda: stepwise.Debounce(period="500ms"), "at least 1s"),
        (lambda: stepwise.Debounce(period="8d"), "at most 7d"),
        (lambda: stepwise.Debounce(period="1m", timeout="later"), "invalid duration"),
        (lambda: stepwise.Debounce(period="1m", timeout=0), "longer than zero"),
        (lambda: stepwise.Debounce(period="1m", key=3), "non-empty CEL"),  # type: ignore[arg-type]
        (lambda: stepwise.Batch(max_size=1, timeout="5s"), "at least 2"),
        (lambda: stepwise.Batch(max_size=True, timeout="5s"), "must be an int"),
        (lambda: stepwise.Batch(max_size=10, timeout="61s"), "at most 1m"),
        (lambda: stepwise.Batch(max_size=10, timeout=0.5), "at least 1s"),
        (lambda: stepwise.Batch(max_size=10, timeout="5s", if_=""), "non-empty CEL"),
        (lambda: stepwise.Priority(run=""), "non-empty CEL"),
        (lambda: stepwise.Priority(run=5), "non-empty CEL"),  # type: ignore[arg-type]
        (lambda: stepwise.Singleton(mode="queue"), "'skip' or 'cancel'"),  # type: ignore[arg-type]
        (lambda: stepwise.Singleton(key=""), "non-empty CEL"),
    ],
)
def test_option_objects_are_validated(build: Any, message: str) -> None:
    with pytest.raises(stepwise.ConfigError, match=message):
        build()


def test_boundary_values_are_accepted() -> None:
    assert stepwise.RateLimit(limit=1, period="24h").to_wire()["period"] == "1d"
    assert stepwise.Debounce(period="1s").to_wire() == {"period": "1s"}
    assert stepwise.Debounce(period=timedelta(days=7)).to_wire() == {"period": "7d"}
    assert stepwise.Batch(max_size=2, timeout=1).to_wire() == {"maxSize": 2, "timeout": "1s"}
    assert stepwise.Batch(max_size=2, timeout="60s").to_wire()["timeout"] == "1m"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "at least 1"),
        ({"concurrency": True}, "ints or Concurrency objects"),
        ({"concurrency": [1, 2, 3]}, "at most 2 concurrency limits"),
        ({"concurrency": [stepwise.Concurrency(limit=1)] * 3}, "at most 2"),
        ({"concurrency": {"limit": 1}}, "takes an int, a Concurrency or a list"),
        ({"concurrency": ["5"]}, "ints or Concurrency objects"),
        ({"throttle": {"limit": 1, "period": "1s"}}, "throttle takes a Throttle object"),
        ({"rate_limit": stepwise.Throttle(limit=1, period="1s")}, "RateLimit object"),
        ({"debounce": "10s"}, "debounce takes a Debounce object"),
        ({"batch_events": 10}, "batch_events takes a Batch object"),
        ({"priority": "event.data.p"}, "priority takes a Priority object"),
        ({"singleton": True}, "singleton takes a Singleton object"),
        ({"idempotency": ""}, "idempotency must be a non-empty CEL"),
        ({"idempotency": 1}, "idempotency must be a non-empty CEL"),
    ],
)
def test_create_function_validates_flow_options(options: dict[str, Any], message: str) -> None:
    client = dev_client()
    with pytest.raises(stepwise.ConfigError, match=message):
        client.create_function(fn_id="f", trigger=TRIGGER, **options)


@pytest.mark.parametrize(
    ("clash", "name"),
    [
        ({"cancel_on": stepwise.CancelOn(event="x")}, "cancel_on"),
        ({"debounce": stepwise.Debounce(period="1m")}, "debounce"),
        ({"singleton": stepwise.Singleton()}, "singleton"),
        ({"priority": stepwise.Priority(run="0")}, "priority"),
    ],
)
def test_batching_cannot_be_combined_with(clash: dict[str, Any], name: str) -> None:
    client = dev_client()
    batch = stepwise.Batch(max_size=10, timeout="5s")
    with pytest.raises(stepwise.ConfigError, match=f"batch_events cannot be combined with {name}"):
        client.create_function(fn_id="f", trigger=TRIGGER, batch_events=batch, **clash)


def test_batching_conflicts_are_all_named() -> None:
    with pytest.raises(stepwise.ConfigError, match=r"with debounce, priority$"):
        stepwise.sdk.FunctionOptions(
            batch_events=stepwise.Batch(max_size=10, timeout="5s"),
            debounce=stepwise.Debounce(period="1m"),
            priority=stepwise.Priority(run="1"),
        )


def test_idempotency_cannot_be_combined_with_a_rate_limit() -> None:
    # The server turns idempotency into a 24 h rate limit that would replace this one.
    client = dev_client()
    with pytest.raises(stepwise.ConfigError, match="idempotency cannot be combined"):
        client.create_function(
            fn_id="f",
            trigger=TRIGGER,
            idempotency="event.data.id",
            rate_limit=stepwise.RateLimit(limit=1, period="1h"),
        )


def test_run_concurrency_uses_the_fn_and_step_form() -> None:
    client = stepwise.Stepwise(app_id="app", is_production=False)

    @client.create_function(
        fn_id="runs",
        trigger=stepwise.TriggerEvent(event="x"),
        concurrency=3,
        run_concurrency=stepwise.Concurrency(limit=1, key="event.data.k"),
    )
    async def runs(ctx: stepwise.Context) -> None:
        return None

    config = runs.get_config("http://app.test/api/inngest")
    assert config["concurrency"] == {
        "fn": [{"limit": 1, "key": "event.data.k"}],
        "step": [{"limit": 3}],
    }

    @client.create_function(
        fn_id="only-runs",
        trigger=stepwise.TriggerEvent(event="x"),
        run_concurrency=stepwise.Concurrency(limit=2),
    )
    async def only_runs(ctx: stepwise.Context) -> None:
        return None

    assert only_runs.get_config("http://app.test/api/inngest")["concurrency"] == {
        "fn": [{"limit": 2}],
        "step": [],
    }
    with pytest.raises(stepwise.ConfigError):
        client.create_function(
            fn_id="bad", trigger=stepwise.TriggerEvent(event="x"), run_concurrency=2
        )  # type: ignore[arg-type]
