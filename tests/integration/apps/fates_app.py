"""A Stepwise SDK app for the events page's "why no run" tests: a function behind an ``if``
expression, a debounced one, a batched one and a plain one."""

from __future__ import annotations

import os

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]

client = stepwise.Stepwise(
    app_id="fates",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


@client.create_function(
    fn_id="guarded",
    trigger=stepwise.TriggerEvent(event="fates/guarded", expression="event.data.ok == true"),
)
async def guarded(ctx: stepwise.Context) -> str:
    return "ok"


@client.create_function(
    fn_id="debounced",
    trigger=stepwise.TriggerEvent(event="fates/debounced"),
    debounce=stepwise.Debounce(period="1h"),
)
async def debounced(ctx: stepwise.Context) -> str:
    return "quiet"


@client.create_function(
    fn_id="batched",
    trigger=stepwise.TriggerEvent(event="fates/batched"),
    batch_events=stepwise.Batch(max_size=10, timeout="60s"),
)
async def batched(ctx: stepwise.Context) -> int:
    return len(ctx.events)


@client.create_function(fn_id="plain", trigger=stepwise.TriggerEvent(event="fates/plain"))
async def plain(ctx: stepwise.Context) -> str:
    return "done"


app = asgi_app(client, [guarded, debounced, batched, plain])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
