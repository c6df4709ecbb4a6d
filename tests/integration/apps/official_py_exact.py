"""An app of the official Python SDK (PyPI ``inngest``, FastAPI) whose every exchange is on record.

The exactness tests compare what our server does with what the reference server does, so
this app writes one ledger line for every call request it answers (``kind: "call"``: which
function and step were asked for, the run, the attempt, and the status, headers and body
of the answer, written *before* the answer leaves), one for every time the SDK's
middleware sees a request (``kind: "hook"``), and one for each step body that ran
(``kind: "step"``).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from collections import Counter
from typing import Any

import inngest
import inngest.fast_api
import uvicorn
from fastapi import FastAPI

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]


def record(**entry: Any) -> None:
    with open(LEDGER, "a") as f:
        f.write(json.dumps(entry) + "\n")


class CallRecorder:
    """ASGI middleware: one ledger line per call request, written before its answer is sent.

    The server may end a run the moment it reads the last answer; recording first means a
    test that saw the run end also sees every call of it in the ledger.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request_body = bytearray()
        held: list[Any] = []

        async def tee_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                request_body.extend(message.get("body", b""))
            return message

        async def hold_send(message: Any) -> None:
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self._record(scope, bytes(request_body), held)
                for m in held:
                    await send(m)
                held.clear()

        await self.app(scope, tee_receive, hold_send)

    @staticmethod
    def _record(scope: Any, request_body: bytes, messages: list[Any]) -> None:
        query = dict(
            pair.split("=", 1) if "=" in pair else (pair, "")
            for pair in scope.get("query_string", b"").decode().split("&")
            if pair
        )
        try:
            request = json.loads(request_body)
        except ValueError:
            request = {}
        ctx = request.get("ctx") or {}
        event = request.get("event") or {}
        start = next(m for m in messages if m["type"] == "http.response.start")
        headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
        raw = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record(
            kind="call",
            fn=query.get("fnId"),
            step=query.get("stepId"),
            run_id=ctx.get("run_id"),
            attempt=ctx.get("attempt"),
            disable_immediate_execution=ctx.get("disable_immediate_execution"),
            event={"name": event.get("name"), "data": event.get("data")},
            status=start["status"],
            no_retry=headers.get("x-inngest-no-retry"),
            body=body,
        )


class HookRecorder(inngest.Middleware):
    """The SDK's own view: ``transform_input`` runs once for each request it executes."""

    async def transform_input(
        self,
        ctx: inngest.Context | inngest.ContextSync,
        function: inngest.Function[Any],
        steps: inngest.StepMemos,
    ) -> None:
        target = getattr(self.raw_request, "query_params", {}).get("stepId")
        record(
            kind="hook",
            hook="transform_input",
            fn=function.id,
            run_id=ctx.run_id,
            attempt=ctx.attempt,
            step=target,
        )


client = inngest.Inngest(
    app_id="exact-py",
    is_production=False,
    api_base_url=SERVER,
    event_api_base_url=SERVER,
    middleware=[HookRecorder],
)

# How many times each run entered its function body: some cases change shape after the first.
ENTRIES: Counter[str] = Counter()


def ran(ctx: inngest.Context, step: str) -> None:
    record(kind="step", run_id=ctx.run_id, step=step, attempt=ctx.attempt)


async def value(ctx: inngest.Context, name: str) -> str:
    """A step body that returns its own name, on record."""
    ran(ctx, name)
    return name


def on(name: str) -> inngest.TriggerEvent:
    return inngest.TriggerEvent(event=f"exact/{name}")


# ---- failed runs: the output is the SDK's error body ------------------------------------


class MyError(Exception):
    pass


@client.create_function(fn_id="non-retriable", retries=1, trigger=on("non-retriable"))
async def non_retriable(ctx: inngest.Context) -> None:
    async def step_1() -> None:
        ran(ctx, "step_1")
        raise inngest.NonRetriableError("foo", quiet=True)

    await ctx.step.run("step_1", step_1)


@client.create_function(fn_id="change-step-error", retries=0, trigger=on("change-step-error"))
async def change_step_error(ctx: inngest.Context) -> None:
    async def foo() -> None:
        raise ValueError("foo")

    try:
        await ctx.step.run("foo", foo)
    except inngest.StepError:
        raise MyError("I am new") from None


async def record_failure(ctx: inngest.Context) -> None:
    record(
        kind="on_failure",
        run_id=ctx.event.data.get("run_id"),
        function_id=ctx.event.data.get("function_id"),
        error=ctx.event.data.get("error"),
        event_data=(ctx.event.data.get("event") or {}).get("data"),
        attempt=ctx.attempt,
        handler_run_id=ctx.run_id,
    )


@client.create_function(
    fn_id="on-failure", retries=0, trigger=on("on-failure"), on_failure=record_failure
)
async def on_failure(ctx: inngest.Context) -> None:
    raise MyError("intentional failure")


@client.create_function(fn_id="nested-step", retries=5, trigger=on("nested-step"))
async def nested_step(ctx: inngest.Context) -> None:
    async def step_1() -> None:
        ran(ctx, "step_1")

        async def step_2() -> None:
            ran(ctx, "step_2")

        try:
            await ctx.step.run("step_2", step_2)
        except Exception:
            ran(ctx, "step_2 caught")  # the SDK's error is not catchable: never recorded

    await ctx.step.run("step_1", step_1)
    ran(ctx, "after step_1")


class Opaque:
    pass


@client.create_function(fn_id="unserializable", retries=0, trigger=on("unserializable"))
async def unserializable(ctx: inngest.Context) -> None:
    async def step_1() -> Opaque:
        return Opaque()

    await ctx.step.run("step_1", step_1)


@client.create_function(fn_id="slow-invokee", retries=0, trigger=on("never"))
async def slow_invokee(ctx: inngest.Context) -> None:
    await ctx.step.sleep("sleep", datetime.timedelta(seconds=60))


@client.create_function(fn_id="invoke-timeout", retries=0, trigger=on("invoke-timeout"))
async def invoke_timeout(ctx: inngest.Context) -> None:
    await ctx.step.invoke("invoke", function=slow_invokee, timeout=datetime.timedelta(seconds=1))


@client.create_function(fn_id="unexpected-step", retries=0, trigger=on("unexpected-step"))
async def unexpected_step(ctx: inngest.Context) -> None:
    ENTRIES[ctx.run_id] += 1

    async def body(name: str) -> None:
        ran(ctx, name)

    # Every request after the first (the targeted ones) meets a step that was not planned.
    if ENTRIES[ctx.run_id] > 1:
        await ctx.step.run("unexpected", body, "unexpected")
    await ctx.group.parallel(
        (
            lambda: ctx.step.run("parallel_1", body, "parallel_1"),
            lambda: ctx.step.run("parallel_2", body, "parallel_2"),
        )
    )


@client.create_function(fn_id="parallel-disappears", retries=0, trigger=on("parallel-disappears"))
async def parallel_disappears(ctx: inngest.Context) -> None:
    ENTRIES[ctx.run_id] += 1

    async def nothing() -> None:
        return None

    steps: tuple[Any, ...] = (
        lambda: ctx.step.run("1a", nothing),
        lambda: ctx.step.run("1b", nothing),
    )
    # Step "1c" exists only on the first request: when it is targeted it has gone.
    if ENTRIES[ctx.run_id] == 1:
        steps += (lambda: ctx.step.run("1c", nothing),)
    await ctx.group.parallel(steps)
    await ctx.step.run("after", nothing)


# ---- request counts ---------------------------------------------------------------------


@client.create_function(fn_id="two-steps", retries=0, trigger=on("two-steps"))
async def two_steps(ctx: inngest.Context) -> list[int]:
    a = await ctx.step.run("a", lambda: 1)
    b = await ctx.step.run("b", lambda: 2)
    return [a, b]


@client.create_function(fn_id="parallel-then-step", retries=0, trigger=on("parallel-then-step"))
async def parallel_then_step(ctx: inngest.Context) -> list[Any]:
    both = await ctx.group.parallel(
        (lambda: ctx.step.run("p1", value, ctx, "p1"), lambda: ctx.step.run("p2", value, ctx, "p2"))
    )
    after = await ctx.step.run("after", value, ctx, "after")
    return [*both, after]


@client.create_function(fn_id="race", retries=0, trigger=on("race"))
async def race(ctx: inngest.Context) -> None:
    # One branch is two fast steps, the other two steps of 2 s each: the fast branch is
    # done long before the slow one's first step ends, so there is one order of events.
    async def fast(name: str) -> None:
        ran(ctx, name)

    async def slow(name: str) -> None:
        await asyncio.sleep(2)
        ran(ctx, name)

    async def fast_branch() -> None:
        await ctx.step.run("a.1", fast, "a.1")
        await ctx.step.run("a.2", fast, "a.2")

    async def slow_branch() -> None:
        await ctx.step.run("b.1", slow, "b.1")
        await ctx.step.run("b.2", slow, "b.2")

    await ctx.group.parallel((fast_branch, slow_branch), parallel_mode=inngest.ParallelMode.RACE)


@client.create_function(fn_id="sleep", retries=0, trigger=on("sleep"))
async def sleep(ctx: inngest.Context) -> str:
    await ctx.step.sleep("nap", datetime.timedelta(seconds=1))
    return "woke"


@client.create_function(fn_id="wait", retries=0, trigger=on("wait"))
async def wait(ctx: inngest.Context) -> Any:
    woken = await ctx.step.wait_for_event(
        "wait",
        event="exact/wake",
        if_exp="async.data.token == event.data.token",
        timeout=datetime.timedelta(seconds=60),
    )
    return None if woken is None else woken.data


@client.create_function(fn_id="invoke-child", retries=0, trigger=on("never"))
async def invoke_child(ctx: inngest.Context) -> int:
    async def double() -> int:
        # A parent may ask for a slow child, to finish its other parallel steps first.
        await asyncio.sleep(float(ctx.event.data.get("delay", 0)))
        return int(ctx.event.data.get("n", 0)) * 2

    return await ctx.step.run("double", double)


@client.create_function(fn_id="invoke-parent", retries=0, trigger=on("invoke-parent"))
async def invoke_parent(ctx: inngest.Context) -> Any:
    return await ctx.step.invoke(
        "call-child", function=invoke_child, data={"n": 21, "parent": ctx.run_id}
    )


@client.create_function(fn_id="issue-example", retries=0, trigger=on("issue-example"))
async def issue_example(ctx: inngest.Context) -> list[Any]:
    results = await ctx.group.parallel(
        (
            lambda: ctx.step.invoke(
                "call-child",
                function=invoke_child,
                data={"n": 2, "delay": 1, "parent": ctx.run_id},
            ),
            lambda: ctx.step.run("r1", value, ctx, "r1"),
            lambda: ctx.step.run("r2", value, ctx, "r2"),
            lambda: ctx.step.send_event(
                "send", inngest.Event(name="exact/sent", data={"parent": ctx.run_id})
            ),
        )
    )
    after = await ctx.step.run("after", value, ctx, "after")
    return [results[0], results[1], results[2], len(results[3]), after]


FUNCTIONS = [
    non_retriable,
    change_step_error,
    on_failure,
    nested_step,
    unserializable,
    slow_invokee,
    invoke_timeout,
    unexpected_step,
    parallel_disappears,
    two_steps,
    parallel_then_step,
    race,
    sleep,
    wait,
    invoke_child,
    invoke_parent,
    issue_example,
]

app = FastAPI()
inngest.fast_api.serve(app, client, FUNCTIONS)
app.add_middleware(CallRecorder)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
