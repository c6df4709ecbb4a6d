"""A Stepwise SDK app whose functions checkpoint (the default), for the checkpointing tests.

The ledger gets one JSON object a line:
  {kind: "call"}   a call request reached the app (before the SDK sees it)
  {kind: "reply"}  what the app answered it: the status and the opcodes of a 206
  {kind: "step"}   a step's code ran
``STEPWISE_TEST_CHECKPOINT_API`` points the client's API (where checkpoints go) elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]

client = stepwise.Stepwise(
    app_id="cp-py",
    is_production=False,
    event_key="test-event-key",
    api_base_url=os.environ.get("STEPWISE_TEST_CHECKPOINT_API", SERVER),
    event_api_base_url=SERVER,
)


def record(**entry: Any) -> None:
    with open(LEDGER, "a") as f:
        f.write(json.dumps({**entry, "t": time.time()}) + "\n")


def ran(ctx: stepwise.Context | stepwise.SyncContext, step: str) -> None:
    record(kind="step", run_id=ctx.run_id, step=step, attempt=ctx.attempt)


def on(event: str, **options: Any) -> Any:
    return client.create_function(
        fn_id=event.replace("/", "-"), trigger=stepwise.TriggerEvent(event=event), **options
    )


@on("cp/three", retries=0)
async def three(ctx: stepwise.Context) -> list[Any]:
    a = await ctx.step.run("a", lambda: ran(ctx, "a") or ctx.event.data["n"])
    b = await ctx.step.run("b", lambda: ran(ctx, "b") or a * 2)
    c = await ctx.step.run("c", lambda: ran(ctx, "c") or {"sum": a + b})
    return [a, b, c]


@on("cp/three-sync", retries=0)
def three_sync(ctx: stepwise.SyncContext) -> list[Any]:
    a = ctx.step.run("a", lambda: ran(ctx, "a") or 1)
    b = ctx.step.run("b", lambda: ran(ctx, "b") or a + 1)
    c = ctx.step.run("c", lambda: ran(ctx, "c") or b + 1)
    return [a, b, c]


@on("cp/off", retries=0, checkpointing=False)
async def off(ctx: stepwise.Context) -> list[int]:
    return [await ctx.step.run(name, lambda name=name: ran(ctx, name) or 1) for name in "abc"]


# Retried every second (the server runs with --retry-interval 1) while the killed app
# restarts, which can take several seconds on a loaded machine.
@on("cp/crash", retries=10)
async def crash(ctx: stepwise.Context) -> list[str]:
    out = []
    for name in ("s1", "s2", "s3"):

        async def work(name: str = name) -> str:
            ran(ctx, name)
            if name == "s2":
                await asyncio.sleep(ctx.event.data.get("s2_seconds", 0))
            return name

        out.append(await ctx.step.run(name, work))
    return out


@on("cp/flaky", retries=2)
async def flaky(ctx: stepwise.Context) -> str:
    await ctx.step.run("pre", lambda: ran(ctx, "pre"))

    def sometimes() -> str:
        ran(ctx, "flaky")
        if ctx.attempt < 2:
            raise RuntimeError(f"failure on attempt {ctx.attempt}")
        return f"ok on attempt {ctx.attempt}"

    result = await ctx.step.run("flaky", sometimes)
    await ctx.step.run("post", lambda: ran(ctx, "post"))
    return result


@on("cp/parallel", retries=0)
async def parallel(ctx: stepwise.Context) -> str:
    await ctx.step.run("seq-1", lambda: ran(ctx, "seq-1"))
    await ctx.step.parallel(
        [
            lambda: ctx.step.run("par-1", lambda: ran(ctx, "par-1")),
            lambda: ctx.step.run("par-2", lambda: ran(ctx, "par-2")),
        ]
    )
    for name in ("after-1", "after-2"):
        await ctx.step.run(name, lambda name=name: ran(ctx, name))
    return "done"


@on("cp/sleep", retries=0)
async def sleeps(ctx: stepwise.Context) -> int:
    a = await ctx.step.run("a", lambda: ran(ctx, "a") or 1)
    b = await ctx.step.run("b", lambda: ran(ctx, "b") or 2)
    await ctx.step.sleep("nap", "1s")
    c = await ctx.step.run("c", lambda: ran(ctx, "c") or 3)
    return a + b + c


@on("cp/runtime", retries=0, checkpointing=stepwise.CheckpointConfig(max_runtime=0.5))
async def runtime(ctx: stepwise.Context) -> str:
    await ctx.step.run("before", lambda: ran(ctx, "before"))
    await asyncio.sleep(1)  # code between steps: the runtime runs out here
    await ctx.step.run("after", lambda: ran(ctx, "after"))
    return "done"


@on("cp/zombie", retries=1)
async def zombie(ctx: stepwise.Context) -> None:
    async def slow_first_time() -> None:
        ran(ctx, "a")
        if ctx.attempt == 0:
            await asyncio.sleep(ctx.event.data.get("a_seconds", 0))

    await ctx.step.run("a", slow_first_time)
    for name in "bcd":
        await ctx.step.run(name, lambda name=name: ran(ctx, name))


FUNCTIONS = [three, three_sync, off, crash, flaky, parallel, sleeps, runtime, zombie]


def ledgered(inner: ASGIApp) -> ASGIApp:
    """Record every call request, and the status and ops of its answer."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await inner(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode()
        request = b""
        while True:
            message = await receive()
            request += message.get("body", b"")
            if not message.get("more_body"):
                break
        run_id = json.loads(request)["ctx"]["run_id"]
        record(kind="call", run_id=run_id, query=query)
        status = 0
        replayed = False

        async def again() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": request, "more_body": False}

        chunks: list[bytes] = []

        async def tap(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await inner(scope, again, tap)
        body = b"".join(chunks)
        ops = None
        if status == 206:
            ops = [op["op"] for op in json.loads(body)]
        record(
            kind="reply",
            run_id=run_id,
            query=query,
            status=status,
            ops=ops,
            body=body.decode()[:2000],
        )

    return app


app = ledgered(asgi_app(client, FUNCTIONS))

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
