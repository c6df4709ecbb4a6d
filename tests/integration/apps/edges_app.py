"""A Stepwise SDK app for the engine's sharp edges: signal conflicts and server faults."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]

client = stepwise.Stepwise(
    app_id="edges",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


def record(ctx: stepwise.Context, step: str, **extra: Any) -> None:
    line = {"run_id": ctx.run_id, "step": step, "attempt": ctx.attempt, "t": time.time(), **extra}
    with open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


@client.create_function(fn_id="signal-waiter", trigger=stepwise.TriggerEvent(event="edges/signal"))
async def signal_waiter(ctx: stepwise.Context) -> Any:
    data = ctx.event.data
    await ctx.step.run("ready", lambda: record(ctx, "ready") or 1)
    got = await ctx.step.wait_for_signal(
        "wait", signal=data["signal"], timeout=data["timeout"], on_conflict=data["mode"]
    )
    return {"got": got}


@client.create_function(
    fn_id="one-at-a-time",
    trigger=stepwise.TriggerEvent(event="edges/limited"),
    concurrency=[stepwise.Concurrency(limit=1)],
)
async def one_at_a_time(ctx: stepwise.Context) -> str:
    async def work() -> str:
        record(ctx, "work")
        await asyncio.sleep(0.05)
        return ctx.event.data["who"]

    return await ctx.step.run("work", work)


app = asgi_app(client, [signal_waiter, one_at_a_time])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
