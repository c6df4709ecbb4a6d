"""A Stepwise SDK app whose functions use the flow controls decided at run creation."""

from __future__ import annotations

import asyncio
import json
import os
import time

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]

client = stepwise.Stepwise(
    app_id="flow", is_production=False, api_base_url=SERVER, event_api_base_url=SERVER
)


def record(ctx: stepwise.Context, step: str) -> None:
    line = {"run_id": ctx.run_id, "step": step, "data": ctx.event.data, "t": time.time()}
    with open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


@client.create_function(
    fn_id="limited",
    trigger=stepwise.TriggerEvent(event="flow/limited"),
    rate_limit=stepwise.RateLimit(limit=2, period="1m", key="event.data.tenant"),
)
async def limited(ctx: stepwise.Context) -> str:
    await ctx.step.run("work", lambda: record(ctx, "limited") or 1)
    return str(ctx.event.data["tenant"])


@client.create_function(
    fn_id="once", trigger=stepwise.TriggerEvent(event="flow/once"), idempotency="event.data.order"
)
async def once(ctx: stepwise.Context) -> str:
    await ctx.step.run("work", lambda: record(ctx, "once") or 1)
    return str(ctx.event.data["order"])


@client.create_function(
    fn_id="single",
    trigger=stepwise.TriggerEvent(event="flow/single"),
    singleton=stepwise.Singleton(key="event.data.user", mode="skip"),
)
async def single(ctx: stepwise.Context) -> str:
    async def slow() -> int:
        record(ctx, "single")
        await asyncio.sleep(float(ctx.event.data.get("seconds", 2)))
        return 1

    await ctx.step.run("work", slow)
    return str(ctx.event.data["user"])


@client.create_function(
    fn_id="single-cancel",
    trigger=stepwise.TriggerEvent(event="flow/single-cancel"),
    singleton=stepwise.Singleton(key="event.data.user", mode="cancel"),
)
async def single_cancel(ctx: stepwise.Context) -> str:
    async def slow() -> int:
        record(ctx, "single-cancel")
        await asyncio.sleep(float(ctx.event.data.get("seconds", 0)))
        return 1

    await ctx.step.run("work", slow)
    await ctx.step.run("done", lambda: record(ctx, "single-cancel-done") or 1)
    return str(ctx.event.data["n"])


@client.create_function(
    fn_id="prioritized",
    trigger=stepwise.TriggerEvent(event="flow/prioritized"),
    priority=stepwise.Priority(run="event.data.p"),
)
async def prioritized(ctx: stepwise.Context) -> int:
    if ctx.event.data.get("blocker"):
        record(ctx, "blocker")
        await asyncio.sleep(2)  # holds the only worker while the backlog builds up
    record(ctx, "prioritized")
    return int(ctx.event.data["p"])


@client.create_function(
    fn_id="bounded",
    trigger=stepwise.TriggerEvent(event="flow/bounded"),
    concurrency=[stepwise.Concurrency(limit=3, key="event.data.tenant")],
)
async def bounded(ctx: stepwise.Context) -> int:
    async def work(step: str) -> int:
        record(ctx, f"{step}-start")
        await asyncio.sleep(0.3)
        record(ctx, f"{step}-end")
        return 1

    a = await ctx.step.run("first", work, "first")
    await ctx.step.sleep("rest", "1s")  # a sleeping run holds no slot
    b = await ctx.step.run("second", work, "second")
    return a + b


@client.create_function(
    fn_id="queued",
    trigger=stepwise.TriggerEvent(event="flow/queued"),
    concurrency=[stepwise.Concurrency(limit=1, key="event.data.group")],
    priority=stepwise.Priority(run="event.data.p"),
)
async def queued(ctx: stepwise.Context) -> int:
    """One step at a time per group: the runs behind it wait for the slot, by priority."""

    async def work() -> int:
        record(ctx, "queued-start")
        await asyncio.sleep(float(ctx.event.data.get("seconds", 0)))
        record(ctx, "queued-end")
        return 1

    await ctx.step.run("work", work)
    return int(ctx.event.data["p"])


@client.create_function(
    fn_id="run-bounded",
    trigger=stepwise.TriggerEvent(event="flow/run-bounded"),
    run_concurrency=stepwise.Concurrency(limit=2, key="event.data.tenant"),
)
async def run_bounded(ctx: stepwise.Context) -> int:
    await ctx.step.run("begin", lambda: record(ctx, "run-begin") or 1)
    await ctx.step.sleep("rest", "1s")  # a run-level slot is held while sleeping too
    await ctx.step.run("finish", lambda: record(ctx, "run-finish") or 1)
    return 1


@client.create_function(
    fn_id="throttled",
    trigger=stepwise.TriggerEvent(event="flow/throttled"),
    throttle=stepwise.Throttle(limit=5, period="1s", burst=1),
)
async def throttled(ctx: stepwise.Context) -> int:
    await ctx.step.run("start", lambda: record(ctx, "throttled") or 1)
    return int(ctx.event.data["i"])


@client.create_function(
    fn_id="debounced",
    trigger=stepwise.TriggerEvent(event="flow/debounced"),
    debounce=stepwise.Debounce(period="1s", key="event.data.user", timeout="3s"),
)
async def debounced(ctx: stepwise.Context) -> int:
    await ctx.step.run("work", lambda: record(ctx, "debounced") or 1)
    return int(ctx.event.data["seq"])


@client.create_function(
    fn_id="batched",
    trigger=stepwise.TriggerEvent(event="flow/batched"),
    batch_events=stepwise.Batch(max_size=5, timeout="2s", key="event.data.group"),
)
async def batched(ctx: stepwise.Context) -> list[int]:
    seqs = [int(e.data["seq"]) for e in ctx.events]

    def note() -> int:
        line = {
            "run_id": ctx.run_id,
            "step": "batched",
            "data": {"seqs": seqs, "group": ctx.event.data["group"]},
            "t": time.time(),
        }
        with open(LEDGER, "a") as f:
            f.write(json.dumps(line) + "\n")
        return len(seqs)

    await ctx.step.run("work", note)
    return seqs


app = asgi_app(
    client,
    [
        limited,
        once,
        single,
        single_cancel,
        prioritized,
        bounded,
        queued,
        run_bounded,
        throttled,
        debounced,
        batched,
    ],
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
