"""A Stepwise SDK app (production mode when given a signing key) whose one function has the
server fetch the URL in its event, and reports what came back or why the step failed."""

from __future__ import annotations

import os
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
SIGNING_KEY = os.environ.get("STEPWISE_TEST_SIGNING_KEY")

client = stepwise.Stepwise(
    app_id="outbound",
    is_production=bool(SIGNING_KEY),
    signing_key=SIGNING_KEY,
    event_key="test-event-key",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


@client.create_function(
    fn_id="fetch", trigger=stepwise.TriggerEvent(event="outbound/fetch"), retries=1
)
async def fetch(ctx: stepwise.Context) -> dict[str, Any]:
    try:
        response = await ctx.step.fetch("fetch", ctx.event.data["url"])
    except stepwise.StepError as exc:
        return {"error": exc.name, "message": exc.message}
    return {"status": response.status_code, "headers": response.headers, "body": response.text}


app = asgi_app(client, [fetch])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
