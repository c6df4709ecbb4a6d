"""The benchmark's functions, served by the official Inngest Python SDK (PyPI ``inngest``):
B1's three steps, and B2's run of ``event.data.steps`` steps, each returning when its body
ran (epoch ms).

The SDK reads its mode from the environment: ``INNGEST_DEV=<server>`` (bench/_stack.py's
``bench_stack``) or ``INNGEST_SIGNING_KEY`` and ``INNGEST_BASE_URL`` (``cluster``).
"""

from __future__ import annotations

import os
import time

import inngest
import inngest.fast_api
import uvicorn
from fastapi import FastAPI

client = inngest.Inngest(app_id="bench-official")


@client.create_function(fn_id="three-steps", trigger=inngest.TriggerEvent(event="bench/three"))
async def three_steps(ctx: inngest.Context) -> int:
    a = await ctx.step.run("a", lambda: 1)
    b = await ctx.step.run("b", lambda: a + 1)
    return await ctx.step.run("c", lambda: b + 1)


@client.create_function(fn_id="many-steps", trigger=inngest.TriggerEvent(event="bench/steps"))
async def many_steps(ctx: inngest.Context) -> list[float]:
    return [
        await ctx.step.run(f"s{k}", lambda: time.time() * 1000)
        for k in range(ctx.event.data["steps"])
    ]


app = FastAPI()
inngest.fast_api.serve(app, client, [three_steps, many_steps])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", access_log=False
    )
