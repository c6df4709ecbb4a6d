"""A Stepwise SDK app for the event API tests; every step execution goes to a ledger file."""

from __future__ import annotations

import json
import os
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]

client = stepwise.Stepwise(
    app_id="events",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


def record(ctx: stepwise.Context, step: str) -> None:
    line = {"run_id": ctx.run_id, "step": step, "attempt": ctx.attempt}
    with open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


@client.create_function(fn_id="counted", trigger=stepwise.TriggerEvent(event="events/counted"))
async def counted(ctx: stepwise.Context) -> dict[str, Any]:
    await ctx.step.run("count", lambda: record(ctx, "count"))
    return dict(ctx.event.data)


@client.create_function(
    fn_id="waits-twice", trigger=stepwise.TriggerEvent(event="events/wait.start")
)
async def waits_twice(ctx: stepwise.Context) -> list[Any]:
    """Two waits in a row for the same event name: one event must resume only one of them."""
    seen = []
    for step_id in ("first", "second"):
        got = await ctx.step.wait_for_event(step_id, event="events/poke", timeout="60s")
        seen.append(got.data.get("n") if got else None)
    return seen


app = asgi_app(client, [counted, waits_twice])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
