"""A Stepwise app validating its events with ``stepwise.ext.validation``."""

from __future__ import annotations

import os
from typing import Any

import uvicorn
from pydantic import BaseModel

import stepwise
from stepwise.adapters.starlette import app as asgi_app
from stepwise.ext.validation import ValidationMiddleware

SERVER = os.environ["STEPWISE_TEST_SERVER"]


class Signup(BaseModel):
    email: str
    plan: str = "free"


class Welcomed(BaseModel):
    email: str
    greeting: str


client = stepwise.Stepwise(
    app_id="validated",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
    middleware=[ValidationMiddleware({"user/signup": Signup, "user/welcomed": Welcomed})],
)


@client.create_function(fn_id="welcome", trigger=stepwise.TriggerEvent(event="user/signup"))
async def welcome(ctx: stepwise.Context[Any, Signup]) -> dict[str, Any]:
    greeting = await ctx.step.run("greet", lambda: f"hello {ctx.event.data.email}")
    if ctx.event.data.plan == "broken":
        # Sent through the client, so refused before it leaves the app: the step fails.
        await ctx.step.send_event("bad", {"name": "user/welcomed", "data": {"email": 1}})
    await ctx.step.send_event(
        "tell",
        stepwise.Event(
            name="user/welcomed", data=Welcomed(email=ctx.event.data.email, greeting=greeting)
        ),
    )
    return {"greeting": greeting, "plan": ctx.event.data.plan}


@client.create_function(fn_id="welcomed", trigger=stepwise.TriggerEvent(event="user/welcomed"))
def welcomed(ctx: stepwise.SyncContext[Any, Welcomed]) -> str:
    return ctx.event.data.greeting.upper()


app = asgi_app(client, [welcome, welcomed])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
