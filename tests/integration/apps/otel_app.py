"""A Stepwise app traced by ``stepwise.ext.opentelemetry`` into the SDK's in-memory
exporter; ``GET /spans`` lists what it holds."""

from __future__ import annotations

import json
import os
from typing import Any

import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import stepwise
from stepwise.adapters.starlette import app as asgi_app
from stepwise.ext.opentelemetry import OpenTelemetryMiddleware

SERVER = os.environ["STEPWISE_TEST_SERVER"]

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
user_tracer = trace.get_tracer("user-code")

client = stepwise.Stepwise(
    app_id="traced",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
    middleware=[OpenTelemetryMiddleware()],
    # A call request per step: the test counts one trace entry per request.
    checkpointing=False,
)


@client.create_function(fn_id="first", trigger=stepwise.TriggerEvent(event="otel/first"))
async def first(ctx: stepwise.Context) -> str:
    def work() -> str:
        with user_tracer.start_as_current_span("inside-a"):
            return "A"

    a = await ctx.step.run("a", work)
    await ctx.step.send_event("fan", {"name": "otel/second", "data": {"from": a}})
    return a


@client.create_function(fn_id="second", trigger=stepwise.TriggerEvent(event="otel/second"))
def second(ctx: stepwise.SyncContext) -> str:
    return str(ctx.step.run("b", lambda: ctx.event.data["from"] + "B"))


serve = asgi_app(client, [first, second])


def span_json(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
    }


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/spans":
        body = json.dumps([span_json(s) for s in exporter.get_finished_spans()]).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await serve(scope, receive, send)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
