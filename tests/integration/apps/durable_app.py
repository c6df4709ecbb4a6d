"""A Stepwise SDK app exercising the durable core; every step execution goes to a ledger file."""

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
SIGNING_KEY = os.environ.get("STEPWISE_TEST_SIGNING_KEY")

client = stepwise.Stepwise(
    app_id="durable",
    is_production=bool(SIGNING_KEY),
    signing_key=SIGNING_KEY,
    event_key="test-event-key",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
    # On by default, as in the SDK; "0" runs every step in a call of its own.
    checkpointing=os.environ.get("STEPWISE_TEST_CHECKPOINTING", "1") != "0",
)


def record(ctx: stepwise.Context | stepwise.SyncContext, step: str) -> None:
    line = {"run_id": ctx.run_id, "step": step, "attempt": ctx.attempt, "t": time.time()}
    with open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


@client.create_function(fn_id="three-steps", trigger=stepwise.TriggerEvent(event="test/three"))
async def three_steps(ctx: stepwise.Context) -> dict[str, Any]:
    async def add(x: int, y: int) -> int:
        record(ctx, "a")
        return x + y

    def double(x: int) -> int:
        record(ctx, "b")
        return x * 2

    a = await ctx.step.run("a", add, ctx.event.data["n"], 1)
    await ctx.step.sleep("nap", "1s")
    b = await ctx.step.run("b", double, a)
    c = await ctx.step.run("c", lambda: record(ctx, "c") or "done")
    return {"a": a, "b": b, "c": c}


@client.create_function(fn_id="flaky", trigger=stepwise.TriggerEvent(event="test/flaky"), retries=5)
async def flaky(ctx: stepwise.Context) -> str:
    await ctx.step.run("stable", lambda: record(ctx, "stable") or 1)

    def sometimes() -> str:
        record(ctx, "flaky")
        if ctx.attempt < ctx.event.data["failures"]:
            raise RuntimeError(f"failure on attempt {ctx.attempt}")
        return f"ok on attempt {ctx.attempt}"

    return await ctx.step.run("flaky", sometimes)


@client.create_function(
    fn_id="non-retriable", trigger=stepwise.TriggerEvent(event="test/non-retriable")
)
async def non_retriable(ctx: stepwise.Context) -> None:
    def boom() -> None:
        record(ctx, "boom")
        raise stepwise.NonRetriableError("card declined for good")

    await ctx.step.run("boom", boom)


@client.create_function(
    fn_id="retry-after", trigger=stepwise.TriggerEvent(event="test/retry-after")
)
async def retry_after(ctx: stepwise.Context) -> str:
    def limited() -> str:
        record(ctx, "limited")
        if ctx.attempt == 0:
            raise stepwise.RetryAfterError("rate limited", 2)
        return "through"

    return await ctx.step.run("limited", limited)


@client.create_function(
    fn_id="catches", trigger=stepwise.TriggerEvent(event="test/catches"), retries=0
)
async def catches(ctx: stepwise.Context) -> str:
    def fails() -> None:
        record(ctx, "fails")
        raise ValueError("bad input")

    try:
        await ctx.step.run("fails", fails)
    except stepwise.StepError as exc:
        return f"recovered from {exc.name}: {exc.message}"
    return "not reached"


@client.create_function(fn_id="slow", trigger=stepwise.TriggerEvent(event="test/slow"))
async def slow(ctx: stepwise.Context) -> list[int]:
    """Steps that take a while, and a sleep, so a crash can land inside either."""
    results = []
    for i in range(3):

        async def work(i: int = i) -> int:
            record(ctx, f"s{i}")
            await asyncio.sleep(ctx.event.data.get("step_seconds", 0.5))
            return i

        results.append(await ctx.step.run(f"s{i}", work))
        if i == 0:
            await ctx.step.sleep("pause", ctx.event.data.get("sleep", "2s"))
    return results


@client.create_function(fn_id="sync-def", trigger=stepwise.TriggerEvent(event="test/sync"))
def sync_def(ctx: stepwise.SyncContext) -> dict[str, Any]:
    value = ctx.step.run("compute", lambda: record(ctx, "compute") or 41) + 1
    ctx.step.sleep("short", 1)
    ids = ctx.step.send_event("notify", stepwise.Event(name="test/notified", data={"value": value}))
    return {"value": value, "sent": len(ids)}


@client.create_function(fn_id="every-minute", trigger=stepwise.TriggerCron(cron="* * * * *"))
async def every_minute(ctx: stepwise.Context) -> dict[str, Any]:
    record(ctx, "tick")
    return {"event": ctx.event.name, "cron": ctx.event.data.get("cron")}


FUNCTIONS = [three_steps, flaky, non_retriable, retry_after, catches, slow, sync_def, every_minute]
app = asgi_app(client, FUNCTIONS)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
