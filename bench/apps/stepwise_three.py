"""The benchmark's functions, served by the Stepwise SDK: B1's three steps, and B2's run of
``event.data.steps`` steps, each returning when its body ran (epoch ms)."""

from __future__ import annotations

import os
import time

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as stepwise_app

# Dev mode when INNGEST_DEV is set (bench/_stack.py), production with INNGEST_SIGNING_KEY.
# Checkpointing (on by default: a run's sequential steps in one call) is turned off with
# STEPWISE_BENCH_CHECKPOINTING=0, to measure a call per step.
client = stepwise.Stepwise(
    app_id="bench", checkpointing=os.environ.get("STEPWISE_BENCH_CHECKPOINTING", "1") != "0"
)


@client.create_function(fn_id="three-steps", trigger=stepwise.TriggerEvent(event="bench/three"))
async def three_steps(ctx: stepwise.Context) -> int:
    a = await ctx.step.run("a", lambda: 1)
    b = await ctx.step.run("b", lambda: a + 1)
    return await ctx.step.run("c", lambda: b + 1)


@client.create_function(fn_id="many-steps", trigger=stepwise.TriggerEvent(event="bench/steps"))
async def many_steps(ctx: stepwise.Context) -> list[float]:
    return [
        await ctx.step.run(f"s{k}", lambda: time.time() * 1000)
        for k in range(ctx.event.data["steps"])
    ]


app = stepwise_app(client, [three_steps, many_steps])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", access_log=False
    )
