"""A Stepwise SDK app for the rerun tests: every step execution goes to a ledger, and each
step returns something a second execution would change (a fresh token)."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]

client = stepwise.Stepwise(
    app_id="rerun",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


def execute(ctx: stepwise.Context, step: str, value: Any) -> dict[str, Any]:
    """Record one execution of ``step``; its result carries a token no other execution has."""
    line = {"run_id": ctx.run_id, "step": step, "attempt": ctx.attempt, "t": time.time()}
    with open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")
    return {"value": value, "token": uuid.uuid4().hex}


@client.create_function(fn_id="three", trigger=stepwise.TriggerEvent(event="rerun/three"))
async def three(ctx: stepwise.Context) -> dict[str, Any]:
    n = ctx.event.data["n"]
    one = await ctx.step.run("one", lambda: execute(ctx, "one", n + 1))
    two = await ctx.step.run("two", lambda: execute(ctx, "two", one["value"] * 2))
    three = await ctx.step.run("three", lambda: execute(ctx, "three", two["value"] + 3))
    return {"values": [one["value"], two["value"], three["value"]], "one_token": one["token"]}


@client.create_function(
    fn_id="batched",
    trigger=stepwise.TriggerEvent(event="rerun/batched"),
    batch_events=stepwise.Batch(max_size=3, timeout="30s"),
)
async def batched(ctx: stepwise.Context) -> list[int]:
    ns = [event.data["n"] for event in ctx.events]
    total = await ctx.step.run("sum", lambda: execute(ctx, "sum", sum(ns)))
    return [*ns, total["value"]]


@client.create_function(
    fn_id="limited",
    trigger=stepwise.TriggerEvent(event="rerun/limited"),
    rate_limit=stepwise.RateLimit(limit=1, period="1h", key="event.data.tenant"),
)
async def limited(ctx: stepwise.Context) -> int:
    result = await ctx.step.run("only", lambda: execute(ctx, "only", 1))
    return int(result["value"])


app = asgi_app(client, [three, batched, limited])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
