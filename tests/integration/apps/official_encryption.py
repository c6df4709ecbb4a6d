"""An app of the official Inngest Python SDK with the official encryption middleware
(PyPI ``inngest-encryption``): the peer our encryption must interoperate with."""

from __future__ import annotations

import json
import os
from typing import Any

import inngest
import inngest.fast_api
import uvicorn
from fastapi import FastAPI
from inngest_encryption import EncryptionMiddleware

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]
KEY = os.environ["STEPWISE_TEST_KEY"]

client = inngest.Inngest(
    app_id="enc-official",
    is_production=False,
    event_key="test-event-key",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
    middleware=[EncryptionMiddleware.factory(KEY)],
)


def record(ctx: inngest.Context, what: str, value: Any) -> None:
    with open(LEDGER, "a") as f:
        f.write(json.dumps({"kind": what, "run_id": ctx.run_id, "value": value}) + "\n")


@client.create_function(fn_id="start", trigger=inngest.TriggerEvent(event="enc/official.start"))
async def start(ctx: inngest.Context) -> dict[str, Any]:
    """Reads the field our app encrypted, then invokes our app with one it encrypts."""
    secret = str(ctx.event.data["encrypted"]["secret"])  # type: ignore[index]
    record(ctx, "official.start.read", secret)

    async def read() -> str:
        return secret

    stepped = await ctx.step.run("read", read)
    echoed = await ctx.step.invoke_by_id(
        "ask-ours",
        app_id="enc-ours",
        function_id="echo",
        data={"encrypted": {"secret": stepped + "-via-official-invoke"}},
    )
    record(ctx, "official.start.echoed", echoed)
    return {"secret": stepped, "ours_echo": echoed}


@client.create_function(fn_id="echo", trigger=inngest.TriggerEvent(event="enc/official.echo"))
async def echo(ctx: inngest.Context) -> dict[str, Any]:
    """Invoked by our app: echoes its payload's encrypted field."""
    value = ctx.event.data["encrypted"]
    record(ctx, "official.echo", value)
    return {"echo": value["secret"]}  # type: ignore[index]


app = FastAPI()
inngest.fast_api.serve(app, client, [start, echo])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
