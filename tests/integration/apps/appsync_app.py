"""An app for the apps tests: one function, and a second one when STEPWISE_TEST_GROWN is set
(restarted with it on the same port, the app has changed and must be synced again)."""

from __future__ import annotations

import os

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
# Set when the server runs in production mode.
SIGNING_KEY = os.environ.get("STEPWISE_TEST_SIGNING_KEY")

client = stepwise.Stepwise(
    app_id="appsync",
    is_production=bool(SIGNING_KEY),
    signing_key=SIGNING_KEY,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


@client.create_function(fn_id="first", trigger=stepwise.TriggerEvent(event="appsync/first"))
async def first(ctx: stepwise.Context) -> str:
    return await ctx.step.run("hello", lambda: "first")


@client.create_function(fn_id="second", trigger=stepwise.TriggerEvent(event="appsync/second"))
async def second(ctx: stepwise.Context) -> str:
    return await ctx.step.run("hello", lambda: "second")


app = asgi_app(client, [first, second] if os.environ.get("STEPWISE_TEST_GROWN") else [first])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
