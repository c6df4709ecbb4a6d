"""The pause benchmark's function: wait for an approval matching the run's own id."""

from __future__ import annotations

import os
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as stepwise_app

client = stepwise.Stepwise(app_id="bench-wait", is_production=False)


@client.create_function(fn_id="waiter", trigger=stepwise.TriggerEvent(event="bench/wait"))
async def waiter(ctx: stepwise.Context) -> Any:
    approval = await ctx.step.wait_for_event(
        "approval", event="bench/approve", timeout="2h", if_="async.data.id == event.data.id"
    )
    return approval.data["id"] if approval else None


app = stepwise_app(client, [waiter])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", access_log=False
    )
