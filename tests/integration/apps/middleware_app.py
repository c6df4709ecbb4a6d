"""A Stepwise app whose middleware writes every hook it sees to the ledger.

Its client does not checkpoint, so that each step costs a request and the hooks of each
request can be told apart; ``checkpointed`` does, and runs its steps in fewer requests."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import uvicorn

import stepwise
from stepwise import FunctionRun, Output, RunInput, StepInfo
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]


class Journal(stepwise.Middleware):
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def note(self, run: FunctionRun, hook: str, **detail: Any) -> None:
        # One id per request: the server calls parallel steps at once, so lines interleave.
        request = run.state.setdefault(self, uuid.uuid4().hex)
        line = {
            "request": request,
            "kind": "hook",
            "tag": self.tag,
            "fn": run.function.fn_id,
            "run_id": run.run_id,
            "attempt": run.attempt,
            "hook": hook,
            **detail,
        }
        with open(LEDGER, "a") as f:
            f.write(json.dumps(line) + "\n")

    def transform_input(self, run: FunctionRun, input: RunInput) -> None:
        self.note(run, "transform_input", memos=len(input.steps))
        input.deps["tag"] = self.tag

    def before_memoization(self, run: FunctionRun) -> None:
        self.note(run, "before_memoization")

    def after_memoization(self, run: FunctionRun) -> None:
        self.note(run, "after_memoization")

    def before_execution(self, run: FunctionRun) -> None:
        self.note(run, "before_execution")

    def after_execution(self, run: FunctionRun) -> None:
        self.note(run, "after_execution")

    async def wrap_step(self, run: FunctionRun, step: StepInfo, call_next: Any) -> Any:
        self.note(run, "wrap_step", step=step.id)
        return await call_next()

    def transform_output(self, run: FunctionRun, output: Output) -> None:
        step = output.step.id if output.step else None
        error = type(output.error).__name__ if output.error else None
        self.note(run, "transform_output", step=step, error=error, has_data=output.has_data)
        if output.step is None and output.error is None and isinstance(output.data, dict):
            output.data = {**output.data, f"seen_by_{self.tag}": True}

    def finished(self, run: FunctionRun, output: Output) -> None:
        self.note(run, "finished", error=type(output.error).__name__ if output.error else None)

    def before_response(self, run: FunctionRun) -> None:
        self.note(run, "before_response")


client = stepwise.Stepwise(
    app_id="hooks",
    is_production=False,
    event_key="k",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
    middleware=[Journal("client")],
    checkpointing=False,
)


def flaky(ctx: stepwise.Context | stepwise.SyncContext, value: int) -> int:
    if ctx.attempt == 0:
        raise RuntimeError("first attempt fails")
    return value * 2


@client.create_function(
    fn_id="async-flow", trigger=stepwise.TriggerEvent(event="hooks/async"), retries=2
)
async def async_flow(ctx: stepwise.Context) -> dict[str, Any]:
    a = await ctx.step.run("a", lambda: 1)
    b = await ctx.step.run("b", flaky, ctx, a)
    return {"a": a, "b": b, "tag": ctx.deps.tag}


@client.create_function(
    fn_id="sync-flow",
    trigger=stepwise.TriggerEvent(event="hooks/sync"),
    retries=2,
    middleware=[Journal("fn")],
)
def sync_flow(ctx: stepwise.SyncContext) -> dict[str, Any]:
    a = ctx.step.run("a", lambda: 1)
    b = ctx.step.run("b", flaky, ctx, a)
    return {"a": a, "b": b, "tag": ctx.deps.tag}


@client.create_function(fn_id="fan", trigger=stepwise.TriggerEvent(event="hooks/fan"))
async def fan(ctx: stepwise.Context) -> dict[str, Any]:
    left, right = await asyncio.gather(
        ctx.step.run("left", lambda: "L"), ctx.step.run("right", lambda: "R")
    )
    joined = await ctx.step.run("join", lambda: left + right)
    return {"joined": joined}


@client.create_function(fn_id="fails", trigger=stepwise.TriggerEvent(event="hooks/fail"), retries=1)
async def fails(ctx: stepwise.Context) -> None:
    await ctx.step.run("ok", lambda: 1)
    raise RuntimeError("always")


@client.create_function(
    fn_id="checkpointed",
    trigger=stepwise.TriggerEvent(event="hooks/checkpointed"),
    retries=2,
    checkpointing=True,
)
async def checkpointed(ctx: stepwise.Context) -> dict[str, Any]:
    a = await ctx.step.run("a", lambda: 1)
    b = await ctx.step.run("b", flaky, ctx, a)
    c = await ctx.step.run("c", lambda: 3)
    return {"a": a, "b": b, "c": c}


app = asgi_app(client, [async_flow, sync_flow, fan, fails, checkpointed])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
