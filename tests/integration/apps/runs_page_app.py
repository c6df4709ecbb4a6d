"""A Stepwise SDK app for the Runs page tests: runs that complete with an output, fail,
sleep, wait, and a gated function (one at a time) whose runs hold until a file appears."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
# The gated runs hold until the file ``<ledger>.open`` exists.
GATE = Path(os.environ["STEPWISE_TEST_LEDGER"] + ".open")

client = stepwise.Stepwise(
    app_id="runs",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


@client.create_function(fn_id="order", trigger=stepwise.TriggerEvent(event="shop/order"))
async def order(ctx: stepwise.Context) -> dict[str, Any]:
    items = ctx.event.data.get("items", [])
    total = await ctx.step.run("total", lambda: sum(int(i) for i in items))
    return {"customer": ctx.event.data.get("customer"), "total": total}


@client.create_function(fn_id="refund", trigger=stepwise.TriggerEvent(event="shop/refund"))
async def refund(ctx: stepwise.Context) -> None:
    def refuse() -> None:
        raise stepwise.NonRetriableError("refunds are closed")

    await ctx.step.run("refuse", refuse)


@client.create_function(
    fn_id="newsletter",
    trigger=stepwise.TriggerEvent(event="shop/newsletter"),
    rate_limit=stepwise.RateLimit(limit=1, period="1h"),
)
async def newsletter(ctx: stepwise.Context) -> str:
    return "sent"


@client.create_function(fn_id="nap", trigger=stepwise.TriggerEvent(event="shop/nap"))
async def nap(ctx: stepwise.Context) -> str:
    await ctx.step.sleep("nap", "1h")
    return "woke up"


@client.create_function(fn_id="await-payment", trigger=stepwise.TriggerEvent(event="shop/await"))
async def await_payment(ctx: stepwise.Context) -> Any:
    paid = await ctx.step.wait_for_event("paid", event="shop/paid", timeout="1h")
    return paid is not None


async def _hold() -> str:
    # The gate is a file another process (the test) creates: polled, not an asyncio.Event.
    while not await asyncio.to_thread(GATE.exists):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return "through"


@client.create_function(
    fn_id="gated",
    trigger=stepwise.TriggerEvent(event="shop/gated"),
    concurrency=[stepwise.Concurrency(limit=1)],
)
async def gated(ctx: stepwise.Context) -> str:
    return await ctx.step.run("hold", _hold)


app = asgi_app(client, [order, refund, newsletter, nap, await_payment, gated])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
