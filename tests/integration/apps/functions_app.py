"""A Stepwise SDK app for the function pages and the ``/v1/functions`` routes: a function
that echoes what it was invoked with (taking as long, or failing, as told), one with every
option a run can have but batching, and a batched one."""

from __future__ import annotations

import os
import time
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
SIGNING_KEY = os.environ.get("STEPWISE_TEST_SIGNING_KEY")

client = stepwise.Stepwise(
    app_id="fns",
    is_production=bool(SIGNING_KEY),
    signing_key=SIGNING_KEY,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


def _echo(event: stepwise.Event) -> dict[str, Any]:
    time.sleep(float(event.data.get("wait_ms", 0)) / 1000)
    if event.data.get("fail"):
        raise stepwise.NonRetriableError("told to fail")
    return {"name": event.name, "data": event.data}


@client.create_function(fn_id="echo", trigger=stepwise.TriggerEvent(event="fns/echo"))
async def echo(ctx: stepwise.Context) -> dict[str, Any]:
    return await ctx.step.run("echo", lambda: _echo(ctx.event))


@client.create_function(
    fn_id="configured",
    name="Configured",
    trigger=[
        stepwise.TriggerEvent(event="fns/order.placed", expression="event.data.total > 100"),
        stepwise.TriggerCron(cron="TZ=Europe/Paris 0 5 * * 1-5"),
    ],
    retries=2,
    cancel_on=stepwise.CancelOn(event="fns/order.cancelled", match="data.order_id", timeout="1h"),
    timeouts=stepwise.Timeouts(start="30s", finish="5m"),
    concurrency=[stepwise.Concurrency(limit=2, key="event.data.user"), 10],
    throttle=stepwise.Throttle(limit=5, period="1m", burst=2),
    rate_limit=stepwise.RateLimit(limit=100, period="1h", key="event.data.user"),
    debounce=stepwise.Debounce(period="10s", timeout="1m"),
    priority=stepwise.Priority(run="event.data.vip ? 60 : 0"),
    singleton=stepwise.Singleton(key="event.data.user", mode="cancel"),
)
async def configured(ctx: stepwise.Context) -> str:
    return "ok"


@client.create_function(
    fn_id="batched",
    trigger=stepwise.TriggerEvent(event="fns/batched"),
    batch_events=stepwise.Batch(max_size=5, timeout="60s"),
    idempotency="event.data.user",
)
async def batched(ctx: stepwise.Context) -> int:
    return len(ctx.events)


app = asgi_app(client, [echo, configured, batched])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
