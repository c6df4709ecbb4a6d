"""A Stepwise SDK app for the run page's tests: a step.fetch, and a step whose output is
too large to show at once."""

from __future__ import annotations

import os

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]

client = stepwise.Stepwise(
    app_id="timeline", event_key="k", api_base_url=SERVER, event_api_base_url=SERVER
)

# 3,000 numbered lines: about 57,000 characters once indented, three parts and a bit.
BIG_LINES = 3000


@client.create_function(fn_id="report", trigger=stepwise.TriggerEvent(event="timeline/report"))
async def report(ctx: stepwise.Context) -> dict[str, int]:
    health = await ctx.step.fetch("health", f"{SERVER}/health?probe=secret-token")
    rows = await ctx.step.run("rows", lambda: [f"row {i:05d}" for i in range(BIG_LINES)])
    return {"health": health.status_code, "rows": len(rows)}


app = asgi_app(client, [report])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
