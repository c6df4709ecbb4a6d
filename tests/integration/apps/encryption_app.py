"""A Stepwise app whose client encrypts with ``stepwise.ext.encryption``; its functions
write what they read to the ledger (the test's only plaintext, kept out of the server)."""

from __future__ import annotations

import json
import os
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app
from stepwise.ext.encryption import EncryptionMiddleware

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]
KEY = os.environ["STEPWISE_TEST_KEY"]
OLD_KEY = os.environ.get("STEPWISE_TEST_OLD_KEY")

client = stepwise.Stepwise(
    app_id="enc-ours",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
    middleware=[EncryptionMiddleware(KEY, fallback_keys=[OLD_KEY] if OLD_KEY else [])],
)


def record(ctx: stepwise.Context, what: str, value: Any) -> None:
    with open(LEDGER, "a") as f:
        f.write(json.dumps({"kind": what, "run_id": ctx.run_id, "value": value}) + "\n")


@client.create_function(fn_id="start", trigger=stepwise.TriggerEvent(event="enc/ours.start"))
async def start(ctx: stepwise.Context) -> dict[str, Any]:
    """Reads its event's encrypted field, sends one to the official app and invokes it."""
    secret = await ctx.step.run("read", lambda: ctx.event.data["encrypted"]["secret"])
    record(ctx, "ours.start.read", secret)
    await ctx.step.send_event(
        "tell-official",
        {"name": "enc/official.start", "data": {"encrypted": {"secret": secret + "-via-send"}}},
    )
    echoed = await ctx.step.invoke(
        "ask-official",
        function="enc-official-echo",
        data={"encrypted": {"secret": secret + "-via-invoke"}},
    )
    record(ctx, "ours.start.echoed", echoed)
    return {"secret": secret, "official_echo": echoed}


@client.create_function(fn_id="echo", trigger=stepwise.TriggerEvent(event="enc/ours.echo"))
async def echo(ctx: stepwise.Context) -> dict[str, Any]:
    """Invoked by the official app: echoes its payload's encrypted field."""
    record(ctx, "ours.echo", ctx.event.data["encrypted"])
    return {"echo": ctx.event.data["encrypted"]["secret"]}


@client.create_function(fn_id="rotated", trigger=stepwise.TriggerEvent(event="enc/rotated"))
async def rotated(ctx: stepwise.Context) -> dict[str, Any]:
    """Reads data sealed with the old key (now a fallback), writes it with the new one."""
    value = await ctx.step.run("under-old-key", lambda: {"n": 1})
    record(ctx, "ours.rotated", {"event": ctx.event.data["encrypted"], "step": value})
    return {"event": ctx.event.data["encrypted"], "step": value}


app = asgi_app(client, [start, echo, rotated])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
