"""A FastAPI app whose routes are durable endpoints (``client.endpoint()``).

Everything observable goes to the ledger, one JSON object a line, with its ``kind``:
``enter`` (a handler was entered: by the client, or by the server re-entering its run),
``step`` (a step's code ran), ``deferred`` (a deferred run ran).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

import stepwise
from stepwise.adapters.fastapi import serve

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]
SIGNING_KEY = os.environ.get("STEPWISE_TEST_SIGNING_KEY")

client = stepwise.Stepwise(
    app_id="endpoints",
    is_production=bool(SIGNING_KEY),
    signing_key=SIGNING_KEY,
    event_key="test-event-key",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)
app = FastAPI()


def record(kind: str, path: str, ctx: stepwise.Context | stepwise.SyncContext, **more: Any) -> None:
    line = {"kind": kind, "path": path, "run_id": ctx.run_id, "t": time.time(), **more}
    with open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


def ran(path: str, ctx: stepwise.Context | stepwise.SyncContext) -> int:
    """How many times a step of ``path`` ran in this run so far."""
    if not os.path.exists(LEDGER):
        return 0
    with open(LEDGER) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return sum(1 for e in lines if e["kind"] == "step" and e["run_id"] == ctx.run_id)


@client.create_defer(fn_id="later", retries=0)
async def later(ctx: stepwise.Context) -> str:
    parents = [p.run_id for p in ctx.parents]
    record("deferred", "-", ctx, data=ctx.event.data, parents=parents)
    return "later done"


serve(app, client, [later])


@app.get("/sync")
@client.endpoint()
async def sync(request: Request, ctx: stepwise.Context) -> Response:
    record("enter", "/sync", ctx, reentry="x-run-id" in request.headers)

    async def a() -> str:
        record("step", "/sync", ctx, step="a")
        return "hello"

    first = await ctx.step.run("a", a)

    async def b() -> str:
        record("step", "/sync", ctx, step="b")
        return f"{first} world"

    second = await ctx.step.run("b", b)
    return JSONResponse({"msg": second}, status_code=202, headers={"x-my-header": "yes"})


@app.get("/async")
@client.endpoint(fn_id="async-endpoint")
async def went_async(request: Request, ctx: stepwise.Context) -> dict[str, Any]:
    record("enter", "/async", ctx, reentry="x-run-id" in request.headers, query=request.url.query)
    first = await ctx.step.run("a", lambda: record("step", "/async", ctx, step="a") or "hello")
    await ctx.step.sleep("nap", "1s")
    second = await ctx.step.run(
        "b", lambda: record("step", "/async", ctx, step="b") or f"{first} world"
    )
    return {"msg": second, "q": request.query_params.get("q")}


class Order(BaseModel):
    qty: int


@app.post("/orders/{item}")
@client.endpoint(async_response="token")
def order(item: str, body: Order, ctx: stepwise.SyncContext) -> PlainTextResponse:
    """A ``def`` handler with FastAPI's own parameters: a path parameter and a body model."""
    record("enter", "/orders", ctx)
    total = ctx.step.run("price", lambda: record("step", "/orders", ctx, step="price") or 3)
    ctx.step.sleep("settle", "1s")
    return PlainTextResponse(f"{body.qty} x {item} = {body.qty * total}", status_code=201)


@app.get("/flaky")
@client.endpoint(retries=2)
async def flaky(ctx: stepwise.Context) -> dict[str, Any]:
    """The step fails in the request and on the first retry, then succeeds."""

    def attempt() -> str:
        count = ran("/flaky", ctx)
        record("step", "/flaky", ctx, step="try", n=count)
        if count < 2:
            raise RuntimeError(f"failure {count}")
        return "third time"

    return {"result": await ctx.step.run("try", attempt)}


@app.get("/broken")
@client.endpoint()
async def broken(ctx: stepwise.Context) -> str:
    await ctx.step.run("a", lambda: record("step", "/broken", ctx, step="a") or 1)
    raise stepwise.NonRetriableError("the handler gave up")


@app.get("/defer")
@client.endpoint()
async def deferring(ctx: stepwise.Context) -> str:
    ctx.defer("kept", function=later, data={"from": "endpoint"})
    dropped = ctx.defer("dropped", function=later, data={"from": "aborted"})
    await ctx.step.run("a", lambda: record("step", "/defer", ctx, step="a") or "a")
    dropped.abort()
    return "deferred"


async def starlette_style(request: Request, ctx: stepwise.Context) -> Response:
    """A plain Starlette route (called with the request alone)."""
    value = await ctx.step.run("a", lambda: request.query_params.get("v", "none"))
    return PlainTextResponse(f"starlette {value}")


app.add_route("/starlette", client.endpoint()(starlette_style), methods=["GET"])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
