"""A Stepwise SDK app for the metrics tests: every call its functions get goes to a ledger."""

from __future__ import annotations

import json
import os

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]
SIGNING_KEY = os.environ.get("STEPWISE_TEST_SIGNING_KEY")

client = stepwise.Stepwise(
    app_id="metrics",
    is_production=bool(SIGNING_KEY),
    signing_key=SIGNING_KEY,
    event_key="test-event-key",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


def called(ctx: stepwise.Context, function: str) -> None:
    """The handler runs once per call request: the ledger counts the server's calls."""
    line = {"kind": "call", "function": function, "run_id": ctx.run_id, "attempt": ctx.attempt}
    with open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


@client.create_function(
    fn_id="steps", trigger=stepwise.TriggerEvent(event="test/metrics.steps"), retries=2
)
async def steps(ctx: stepwise.Context) -> str:
    called(ctx, "metrics-steps")
    await ctx.step.run("first", lambda: 1)

    def second() -> str:
        if ctx.attempt == 0:
            raise RuntimeError("fails once")
        return "ok"

    return await ctx.step.run("second", second)


@client.create_function(
    fn_id="doomed", trigger=stepwise.TriggerEvent(event="test/metrics.doomed"), retries=0
)
async def doomed(ctx: stepwise.Context) -> None:
    called(ctx, "metrics-doomed")

    def boom() -> None:
        raise RuntimeError("always fails")

    await ctx.step.run("boom", boom)


@client.create_function(
    fn_id="sleeper",
    trigger=stepwise.TriggerEvent(event="test/metrics.sleep"),
    cancel_on=stepwise.CancelOn(event="test/metrics.stop"),
)
async def sleeper(ctx: stepwise.Context) -> None:
    called(ctx, "metrics-sleeper")
    await ctx.step.sleep("nap", "1h")


@client.create_function(fn_id="waiter", trigger=stepwise.TriggerEvent(event="test/metrics.wait"))
async def waiter(ctx: stepwise.Context) -> None:
    called(ctx, "metrics-waiter")
    await ctx.step.wait_for_event("approval", event="test/metrics.approved", timeout="1h")


FUNCTIONS = [steps, doomed, sleeper, waiter]
app = asgi_app(client, FUNCTIONS)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
