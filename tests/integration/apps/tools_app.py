"""A Stepwise SDK app using every step tool and run option; step executions go to a ledger."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]
FETCH_TARGET = os.environ.get("STEPWISE_TEST_FETCH_URL", f"{SERVER}/health")

client = stepwise.Stepwise(
    app_id="tools",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


def record(ctx: stepwise.Context | stepwise.SyncContext, step: str, **extra: Any) -> None:
    line = {"run_id": ctx.run_id, "step": step, "attempt": ctx.attempt, "t": time.time(), **extra}
    with open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


@client.create_function(fn_id="waiter", trigger=stepwise.TriggerEvent(event="tools/wait.start"))
async def waiter(ctx: stepwise.Context) -> dict[str, Any]:
    got = await ctx.step.wait_for_event(
        "wait-approval",
        event="tools/approved",
        timeout=ctx.event.data.get("timeout", "30s"),
        if_="async.data.order == event.data.order",
    )
    await ctx.step.run("after", lambda: record(ctx, "after") or 1)
    return {"matched": got is not None, "by": got.data.get("by") if got else None}


@client.create_function(fn_id="child", trigger=stepwise.TriggerEvent(event="tools/child.direct"))
async def child(ctx: stepwise.Context) -> Any:
    mode = ctx.event.data.get("mode")
    if mode == "fail":
        raise stepwise.NonRetriableError("child refused")
    if mode == "slow":
        await ctx.step.sleep("linger", "30s")
    return await ctx.step.run("double", lambda: ctx.event.data["n"] * 2)


@client.create_function(fn_id="parent", trigger=stepwise.TriggerEvent(event="tools/invoke"))
async def parent(ctx: stepwise.Context) -> dict[str, Any]:
    try:
        value = await ctx.step.invoke(
            "call-child",
            function=child,
            data={"n": 21, "mode": ctx.event.data.get("mode")},
            timeout=ctx.event.data.get("timeout", "60s"),
        )
        return {"ok": value}
    except stepwise.StepError as exc:
        return {"error": exc.name, "message": exc.message}


@client.create_function(
    fn_id="fan-out", trigger=stepwise.TriggerEvent(event="tools/parallel"), retries=3
)
async def fan_out(ctx: stepwise.Context) -> list[int]:
    async def work(i: int) -> int:
        record(ctx, f"p{i}")
        if i == 7 and ctx.attempt < 2:
            raise RuntimeError(f"p7 fails on attempt {ctx.attempt}")
        await asyncio.sleep(0.01)
        return i * i

    results = await asyncio.gather(*(ctx.step.run(f"p{i}", work, i) for i in range(20)))
    total = await ctx.step.run("sum", lambda: sum(results))
    return [*results, total]


@client.create_function(
    fn_id="cancellable",
    trigger=stepwise.TriggerEvent(event="tools/cancellable"),
    cancel_on=[stepwise.CancelOn(event="tools/cancel", match="data.key")],
)
async def cancellable(ctx: stepwise.Context) -> str:
    phase = ctx.event.data.get("phase", "sleep")
    await ctx.step.run("begin", lambda: record(ctx, "begin") or 1)
    if phase == "sleep":
        await ctx.step.sleep("nap", "60s")
    elif phase == "wait":
        await ctx.step.wait_for_event("never", event="tools/never", timeout="60s")
    elif phase == "run":

        async def long() -> int:
            record(ctx, "long")
            await asyncio.sleep(5)
            return 1

        await ctx.step.run("long", long)
    await ctx.step.run("end", lambda: record(ctx, "end") or 1)
    return "not cancelled"


@client.create_function(
    fn_id="timed",
    trigger=stepwise.TriggerEvent(event="tools/timed"),
    timeouts=stepwise.Timeouts(finish="2s"),
)
async def timed(ctx: stepwise.Context) -> str:
    await ctx.step.run("begin", lambda: record(ctx, "begin") or 1)
    await ctx.step.sleep("too-long", "10s")
    await ctx.step.run("end", lambda: record(ctx, "end") or 1)
    return "finished"


@client.create_function(
    fn_id="start-timed",
    trigger=stepwise.TriggerEvent(event="tools/start-timed"),
    timeouts=stepwise.Timeouts(start="1s"),
)
async def start_timed(ctx: stepwise.Context) -> str:
    return "started"


async def on_failure(ctx: stepwise.Context) -> dict[str, Any]:
    original = ctx.event.data["event"]
    error = ctx.event.data["error"]
    record(ctx, "on-failure", original=original, error=error)
    return {"original": original["data"], "error": error["message"]}


@client.create_function(
    fn_id="fails-then-handled",
    trigger=stepwise.TriggerEvent(event="tools/fails"),
    retries=0,
    on_failure=on_failure,
)
async def fails_then_handled(ctx: stepwise.Context) -> None:
    raise RuntimeError(f"broken for {ctx.event.data['who']}")


@client.create_function(fn_id="signalled", trigger=stepwise.TriggerEvent(event="tools/signal.wait"))
async def signalled(ctx: stepwise.Context) -> Any:
    got = await ctx.step.wait_for_signal("sig", signal=ctx.event.data["signal"], timeout="30s")
    return got


@client.create_function(fn_id="sync-tools", trigger=stepwise.TriggerEvent(event="tools/sync"))
def sync_tools(ctx: stepwise.SyncContext) -> dict[str, Any]:
    a = ctx.step.run("a", lambda: record(ctx, "a") or 1)
    ctx.step.sleep("nap", "1s")
    ctx.step.sleep_until("nap-until", datetime.now(UTC) + timedelta(seconds=1))
    pair = ctx.step.parallel(
        [lambda: ctx.step.run("b", lambda: 2), lambda: ctx.step.run("c", lambda: 3)]
    )
    ids = ctx.step.send_event("emit", stepwise.Event(name="tools/sync.emitted", data={"a": a}))
    waited = ctx.step.wait_for_event(
        "wait", event="tools/sync.go", timeout="20s", match="data.token"
    )
    signalled = ctx.step.wait_for_signal(
        "signal", signal=f"sync-{ctx.event.data['token']}", timeout="20s"
    )
    invoked = ctx.step.invoke("invoke", function=child, data={"n": 5})
    fetched = ctx.step.fetch("fetch", FETCH_TARGET)
    return {
        "a": a,
        "pair": pair,
        "sent": len(ids),
        "waited": waited.data if waited else None,
        "signalled": signalled,
        "invoked": invoked,
        "fetched": fetched.status_code,
    }


@client.create_function(fn_id="fetcher", trigger=stepwise.TriggerEvent(event="tools/fetch"))
async def fetcher(ctx: stepwise.Context) -> dict[str, Any]:
    response = await ctx.step.fetch("get-health", FETCH_TARGET)
    # The drop-in: inside a function (outside a step) it is a durable step.fetch too.
    dropped_in = await stepwise.fetch(FETCH_TARGET)
    return {
        "status": response.status_code,
        "body": response.json(),
        "drop_in": dropped_in.status_code,
    }


FUNCTIONS = [
    waiter,
    child,
    parent,
    fan_out,
    cancellable,
    timed,
    start_timed,
    fails_then_handled,
    signalled,
    sync_tools,
    fetcher,
]
app = asgi_app(client, FUNCTIONS)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
