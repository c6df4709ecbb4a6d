"""A Stepwise app reporting to Sentry through ``stepwise.ext.sentry``.

Its Sentry transport keeps envelopes in memory and writes them to the ledger only when
flushed; an ASGI wrapper writes a ``response`` line once each call's answer has gone. An
envelope before its ``response`` line was therefore flushed before the response.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import sentry_sdk
import uvicorn
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

import stepwise
from stepwise.adapters.starlette import app as asgi_app
from stepwise.ext.sentry import SentryMiddleware

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]
_lock = threading.Lock()


def write(line: dict[str, Any]) -> None:
    with _lock, open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


class RecordingTransport(Transport):
    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.pending: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            payload = item.payload.json
            if payload is not None:
                self.pending.append({"kind": "sentry", "type": item.type, "payload": payload})

    def flush(self, timeout: float, callback: Any = None) -> None:
        items, self.pending = self.pending, []
        for item in items:
            write(item)


sentry_sdk.init(
    dsn="http://public@127.0.0.1:9/1",
    transport=RecordingTransport,
    traces_sample_rate=1.0,
    default_integrations=False,
    auto_enabling_integrations=False,
)

client = stepwise.Stepwise(
    app_id="sentried",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
    middleware=[SentryMiddleware()],
    # A call request per step: the test counts one trace entry per request.
    checkpointing=False,
)


@client.create_function(
    fn_id="steps", name="Steps", trigger=stepwise.TriggerEvent(event="sentry/steps"), retries=1
)
async def steps(ctx: stepwise.Context) -> int:
    a = await ctx.step.run("a", lambda: 1)

    def flaky() -> int:
        if ctx.attempt == 0:
            raise RuntimeError("b broke once")
        return a + 1

    return await ctx.step.run("b", flaky)


@client.create_function(fn_id="fails", trigger=stepwise.TriggerEvent(event="sentry/fail"))
def fails(ctx: stepwise.SyncContext) -> None:
    raise stepwise.NonRetriableError("the function gave up")


serve = asgi_app(client, [steps, fails])


async def app(scope: Any, receive: Any, send: Any) -> None:
    await serve(scope, receive, send)
    if scope["type"] == "http" and scope["method"] == "POST":
        write({"kind": "response", "query": scope["query_string"].decode()})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
