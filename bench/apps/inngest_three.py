"""The benchmark's 3-step function, served by the official Inngest Python SDK (PyPI ``inngest``)."""

from __future__ import annotations

import os

import inngest
import inngest.fast_api
import uvicorn
from fastapi import FastAPI

server = os.environ["INNGEST_DEV"]
client = inngest.Inngest(
    app_id="bench-official", is_production=False, api_base_url=server, event_api_base_url=server
)


@client.create_function(fn_id="three-steps", trigger=inngest.TriggerEvent(event="bench/three"))
async def three_steps(ctx: inngest.Context) -> int:
    a = await ctx.step.run("a", lambda: 1)
    b = await ctx.step.run("b", lambda: a + 1)
    return await ctx.step.run("c", lambda: b + 1)


app = FastAPI()
inngest.fast_api.serve(app, client, [three_steps])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", access_log=False
    )
