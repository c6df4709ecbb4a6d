"""An app served by the official Inngest Python SDK (PyPI ``inngest``), talking to our server."""

from __future__ import annotations

import datetime
import json
import os

import inngest
import inngest.fast_api
import uvicorn
from fastapi import FastAPI

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]

SIGNING_KEY = os.environ.get("STEPWISE_TEST_SIGNING_KEY")

client = inngest.Inngest(
    app_id="official-py",
    is_production=bool(SIGNING_KEY),
    signing_key=SIGNING_KEY,
    event_key="test-event-key",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


def record(run_id: str, step: str, attempt: int) -> None:
    with open(LEDGER, "a") as f:
        f.write(json.dumps({"run_id": run_id, "step": step, "attempt": attempt}) + "\n")


@client.create_function(
    fn_id="three-steps", trigger=inngest.TriggerEvent(event="interop/three"), retries=2
)
async def three_steps(ctx: inngest.Context) -> dict[str, object]:
    def first() -> int:
        record(ctx.run_id, "first", ctx.attempt)
        return int(ctx.event.data["n"])

    def second(value: int) -> int:
        record(ctx.run_id, "second", ctx.attempt)
        if ctx.event.data.get("fail_second_once") and ctx.attempt == 0:
            raise RuntimeError("transient failure")
        return value * 2

    a = await ctx.step.run("first", first)
    await ctx.step.sleep("nap", datetime.timedelta(seconds=1))
    b = await ctx.step.run("second", second, a)
    sent = await ctx.step.send_event(
        "announce", inngest.Event(name="interop/announced", data={"b": b})
    )
    return {"a": a, "b": b, "sent": len(sent)}


@client.create_function(fn_id="fails", trigger=inngest.TriggerEvent(event="interop/fail"))
async def fails(ctx: inngest.Context) -> None:
    raise inngest.NonRetriableError("no way")


app = FastAPI()
inngest.fast_api.serve(app, client, [three_steps, fails])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
