"""A Stepwise SDK app for the dashboard tests: a function with steps, and one that sleeps."""

from __future__ import annotations

import os

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
# Set when the server runs in production mode (the login tests).
SIGNING_KEY = os.environ.get("STEPWISE_TEST_SIGNING_KEY")

client = stepwise.Stepwise(
    app_id="dashboard",
    is_production=bool(SIGNING_KEY),
    signing_key=SIGNING_KEY,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


@client.create_function(fn_id="greet", trigger=stepwise.TriggerEvent(event="dash/greet"))
async def greet(ctx: stepwise.Context) -> str:
    who = await ctx.step.run("who", lambda: str(ctx.event.data.get("who", "nobody")))
    greeting = await ctx.step.run("compose", lambda: f"Hello {who}")
    return await ctx.step.run("shout", lambda: greeting.upper())


@client.create_function(fn_id="sleeper", trigger=stepwise.TriggerEvent(event="dash/sleeper"))
async def sleeper(ctx: stepwise.Context) -> str:
    await ctx.step.run("before", lambda: 1)
    await ctx.step.sleep("nap", "1h")
    return "woke up"


app = asgi_app(client, [greet, sleeper])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
