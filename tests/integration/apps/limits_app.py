"""A Stepwise SDK app that runs into the server's limits."""

from __future__ import annotations

import os

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
MB = 1024 * 1024

client = stepwise.Stepwise(
    app_id="limits", is_production=False, api_base_url=SERVER, event_api_base_url=SERVER
)


@client.create_function(
    fn_id="big-output", trigger=stepwise.TriggerEvent(event="limits/big-output"), retries=0
)
async def big_output(ctx: stepwise.Context) -> str:
    try:
        await ctx.step.run("huge", lambda: "x" * (5 * MB))
    except stepwise.StepError as exc:
        return f"{exc.name}: {exc.message}"
    return "stored"


@client.create_function(fn_id="big-state", trigger=stepwise.TriggerEvent(event="limits/big-state"))
async def big_state(ctx: stepwise.Context) -> list[int]:
    # Three steps of 1.5 MB: past 4 MB the server stops sending state in the request, and
    # the SDK fetches events and step results from the server's API instead.
    sizes = []
    for i in range(3):
        chunk = await ctx.step.run(f"chunk-{i}", lambda i=i: str(i) * int(1.5 * MB))
        sizes.append(len(chunk))
    total = await ctx.step.run("total", lambda: sum(sizes))
    return [*sizes, total]


@client.create_function(
    fn_id="many-steps", trigger=stepwise.TriggerEvent(event="limits/many-steps")
)
async def many_steps(ctx: stepwise.Context) -> int:
    for i in range(ctx.event.data["steps"]):
        await ctx.step.run(f"s{i}", lambda i=i: i)
    return int(ctx.event.data["steps"])


app = asgi_app(client, [big_output, big_state, many_steps])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
