"""The multi-node test's app: steps under a concurrency limit, a sleep and a wait for an event.

It runs in production mode against whichever node it is told to sync with, and writes one
ledger line per step body that ran to its end, with the unique token that body returned,
and the number of step bodies in flight when it began (the concurrency the app saw).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]
LIMIT = int(os.environ.get("CLUSTER_LIMIT", "8"))

client = stepwise.Stepwise(
    app_id="cluster", is_production=True, api_base_url=SERVER, event_api_base_url=SERVER
)
in_flight = 0


def _record(line: dict[str, object]) -> None:
    with open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


def body(ctx: stepwise.Context, step: str) -> object:
    async def run() -> str:
        global in_flight
        in_flight += 1
        seen = in_flight
        try:
            await asyncio.sleep(0.01)
            token = uuid.uuid4().hex
            _record({"kind": "done", "run_id": ctx.run_id, "step": step, "token": token,
                     "in_flight": seen, "n": ctx.event.data["n"]})  # fmt: skip
            return token
        finally:
            in_flight -= 1

    return run


@client.create_function(
    fn_id="work",
    trigger=stepwise.TriggerEvent(event="cluster/start"),
    concurrency=[stepwise.Concurrency(limit=LIMIT)],
    retries=10,
)
async def work(ctx: stepwise.Context) -> dict[str, object]:
    first = await ctx.step.run("first", body(ctx, "first"))
    await ctx.step.sleep("nap", "1s")
    ready = await ctx.step.run("ready", body(ctx, "ready"))
    go = await ctx.step.wait_for_event("go", event="cluster/go", match="data.n", timeout="10m")
    last = await ctx.step.run("last", body(ctx, "last"))
    return {"first": first, "ready": ready, "last": last, "go": go is not None}


app = asgi_app(client, [work])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", access_log=False
    )
