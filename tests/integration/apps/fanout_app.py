"""A Stepwise SDK app that fans out wide: invokes, step.runs and waits, joined at the end."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]

client = stepwise.Stepwise(
    app_id="fanout",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


@client.create_function(fn_id="leaf", trigger=stepwise.TriggerEvent(event="fanout/leaf"))
async def leaf(ctx: stepwise.Context) -> int:
    return int(ctx.event.data["n"]) * 2


@client.create_function(fn_id="invokes", trigger=stepwise.TriggerEvent(event="fanout/invokes"))
async def invokes(ctx: stepwise.Context) -> dict[str, Any]:
    width = int(ctx.event.data["width"])
    results = await asyncio.gather(
        *(ctx.step.invoke(f"child-{i}", function=leaf, data={"n": i}) for i in range(width))
    )
    return {"count": len(results), "sum": sum(results)}


@client.create_function(fn_id="runs", trigger=stepwise.TriggerEvent(event="fanout/runs"))
async def runs(ctx: stepwise.Context) -> dict[str, Any]:
    width = int(ctx.event.data["width"])

    async def square(i: int) -> int:
        return i * i

    results = await asyncio.gather(*(ctx.step.run(f"sq-{i}", square, i) for i in range(width)))
    return {"count": len(results), "sum": sum(results)}


@client.create_function(fn_id="waits", trigger=stepwise.TriggerEvent(event="fanout/waits"))
async def waits(ctx: stepwise.Context) -> dict[str, Any]:
    width = int(ctx.event.data["width"])
    tag = ctx.event.data["tag"]
    got = await asyncio.gather(
        *(
            ctx.step.wait_for_event(
                f"wait-{i}",
                event="fanout/go",
                timeout="2m",
                if_=f"async.data.slot == '{tag}-{i}'",
            )
            for i in range(width)
        )
    )
    return {
        "count": sum(1 for e in got if e is not None),
        "sum": sum(e.data["n"] for e in got if e),
    }


app = asgi_app(client, [leaf, invokes, runs, waits])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
