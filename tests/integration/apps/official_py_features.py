"""An app of the official Python SDK (PyPI ``inngest``) with one function per feature it emits.

``STEPWISE_TEST_FRAMEWORK`` picks the framework: ``fastapi`` serves ``async def`` functions
(``inngest.Context``), ``flask`` serves ``def`` functions (``inngest.ContextSync``), as
each framework is used. Both serve the same function ids as ``tests/interop/js/features.mjs``,
so one set of tests checks every SDK. The ledger gets one line per function entry (kind
``enter``) and one at the start and end of each recorded step body (kind ``step``).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import time
from collections.abc import Callable
from typing import Any

import inngest

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]
FRAMEWORK = os.environ.get("STEPWISE_TEST_FRAMEWORK", "fastapi")
SIGNING_KEY = os.environ.get("STEPWISE_TEST_SIGNING_KEY")

client = inngest.Inngest(
    app_id=os.environ.get("STEPWISE_TEST_APP_ID", f"features-py-{FRAMEWORK}"),
    is_production=bool(SIGNING_KEY),
    signing_key=SIGNING_KEY,
    event_key="test-event-key",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)

SIZE = 2_200_000  # two steps of this many characters are over the inline state limit
SECONDS = datetime.timedelta(seconds=1)


def record(**entry: Any) -> None:
    with open(LEDGER, "a") as f:
        f.write(json.dumps({**entry, "at": time.time() * 1000}) + "\n")


def edge(fn: str, ctx: inngest.Context | inngest.ContextSync, which: str) -> str:
    token = str(ctx.event.data.get("token"))
    record(kind="step", fn=fn, run_id=ctx.run_id, token=token, edge=which)
    return token


def work(fn: str, ctx: inngest.ContextSync, hold_ms: int = 0) -> str:
    """A step body on record: which function, run and token it ran for, as it starts and ends."""
    edge(fn, ctx, "start")
    time.sleep(hold_ms / 1000)
    return edge(fn, ctx, "end")


async def work_async(fn: str, ctx: inngest.Context, hold_ms: int = 0) -> str:
    edge(fn, ctx, "start")
    await asyncio.sleep(hold_ms / 1000)
    return edge(fn, ctx, "end")


def on(fn_id: str) -> inngest.TriggerEvent:
    return inngest.TriggerEvent(event=f"feat/{fn_id}")


def thrown(err: inngest.StepError) -> dict[str, str]:
    return {"name": err.name, "message": err.message}


def wake_if(token_only: bool) -> str:
    match = "async.data.token == event.data.token"
    return match if token_only else f"{match} && async.data.ok == true"


def failure_record(ctx: inngest.Context | inngest.ContextSync) -> dict[str, Any]:
    data = ctx.event.data
    error = data["error"]
    assert isinstance(data["event"], dict) and isinstance(error, dict)
    return {
        "failed_run": data["run_id"],
        "function_id": data["function_id"],
        "token": data["event"]["data"]["token"],
        "message": error["message"],
    }


def flow_result(ctx: inngest.Context | inngest.ContextSync) -> dict[str, Any]:
    return {
        "token": ctx.event.data.get("token"),
        "n": ctx.event.data.get("n"),
        "batch": [e.data.get("n") for e in ctx.events],
    }


# Flow control: each of these functions runs one recorded step.
FLOW: dict[str, dict[str, Any]] = {
    "concurrency": {"concurrency": [inngest.Concurrency(limit=1, key="event.data.group")]},
    "throttle": {
        "throttle": inngest.Throttle(limit=1, period=60 * SECONDS, burst=1, key="event.data.group")
    },
    "rate-limit": {
        "rate_limit": inngest.RateLimit(limit=1, period=60 * SECONDS, key="event.data.group")
    },
    "debounce": {"debounce": inngest.Debounce(period=2 * SECONDS, key="event.data.group")},
    "batch": {
        "batch_events": inngest.Batch(max_size=3, timeout=30 * SECONDS, key="event.data.group")
    },
    "priority": {
        "concurrency": [inngest.Concurrency(limit=1)],
        "priority": inngest.Priority(run="event.data.priority"),
    },
    "idempotency": {"idempotency": "event.data.group"},
    "singleton-skip": {"singleton": inngest.Singleton(key="event.data.group", mode="skip")},
    "singleton-cancel": {"singleton": inngest.Singleton(key="event.data.group", mode="cancel")},
}
OPTIONS: dict[str, dict[str, Any]] = {
    "cancel-on": {
        "cancel": [
            inngest.Cancel(event="feat/cancel", if_exp="async.data.token == event.data.token")
        ]
    },
    "timeout-finish": {"timeouts": inngest.Timeouts(finish=SECONDS)},
    **FLOW,
}


# Functions that sleep, then answer: an invoked child too slow for its parent, a run to
# cancel, a run over its finish timeout.
SLEEPERS = {
    "child-slow": (30, "too late"),
    "cancel-on": (60, "not cancelled"),
    "timeout-finish": (30, "not timed out"),
}


def entered(fn_id: str, ctx: inngest.Context | inngest.ContextSync) -> None:
    record(kind="enter", fn=fn_id, run_id=ctx.run_id, token=ctx.event.data.get("token"))


def register(
    functions: list[inngest.Function[Any]], fn_id: str, body: Any, options: dict[str, Any]
) -> inngest.Function[Any]:
    config = {"retries": 0, **OPTIONS.get(fn_id, {}), **options}
    f = client.create_function(fn_id=fn_id, trigger=on(fn_id), **config)(body)
    functions.append(f)
    return f


def async_functions() -> list[inngest.Function[Any]]:
    """The functions as a FastAPI app writes them: ``async def``, ``await ctx.step...``."""
    functions: list[inngest.Function[Any]] = []

    def fn(fn_id: str, **options: Any) -> Callable[[Any], inngest.Function[Any]]:
        def decorate(handler: Any) -> inngest.Function[Any]:
            async def body(ctx: inngest.Context) -> Any:
                entered(fn_id, ctx)
                return await handler(ctx)

            body.__name__ = handler.__name__
            return register(functions, fn_id, body, options)

        return decorate

    async def wait(ctx: inngest.Context, token_only: bool, seconds: int) -> Any:
        event = "feat/wake" if seconds > 1 else "feat/never"
        got = await ctx.step.wait_for_event(
            "wait", event=event, if_exp=wake_if(token_only), timeout=seconds * SECONDS
        )
        return None if got is None else got.data

    @fn("wait-match")
    async def wait_match(ctx: inngest.Context) -> Any:
        return await wait(ctx, True, 60)

    @fn("wait-if")
    async def wait_if(ctx: inngest.Context) -> Any:
        return await wait(ctx, False, 60)

    @fn("wait-timeout")
    async def wait_timeout(ctx: inngest.Context) -> Any:
        return {"got": await wait(ctx, True, 1)}

    @fn("child")
    async def child(ctx: inngest.Context) -> int:
        async def double() -> int:
            await work_async("child", ctx)
            return int(ctx.event.data["n"]) * 2

        return await ctx.step.run("double", double)

    @fn("child-fails")
    async def child_fails(ctx: inngest.Context) -> None:
        raise inngest.NonRetriableError("child says no")

    sleepers = {}
    for fn_id, (seconds, answer) in SLEEPERS.items():

        @fn(fn_id)
        async def sleeper(
            ctx: inngest.Context, seconds: int = seconds, answer: str = answer
        ) -> str:
            await ctx.step.sleep("long", seconds * SECONDS)
            return answer

        sleepers[fn_id] = sleeper
    child_slow = sleepers["child-slow"]

    @fn("invoke-ok")
    async def invoke_ok(ctx: inngest.Context) -> Any:
        data = {"n": 21, "token": ctx.event.data["token"]}
        return await ctx.step.invoke("call", function=child, data=data)

    async def invoke_catching(
        ctx: inngest.Context, target: inngest.Function[Any], **kw: Any
    ) -> Any:
        try:
            return {"ok": await ctx.step.invoke("call", function=target, data={}, **kw)}
        except inngest.StepError as err:
            return {"caught": thrown(err)}

    @fn("invoke-fail")
    async def invoke_fail(ctx: inngest.Context) -> Any:
        return await invoke_catching(ctx, child_fails)

    @fn("invoke-timeout")
    async def invoke_timeout(ctx: inngest.Context) -> Any:
        return await invoke_catching(ctx, child_slow, timeout=SECONDS)

    async def named(name: str) -> str:
        return name

    @fn("parallel")
    async def parallel(ctx: inngest.Context) -> list[str]:
        steps = tuple(
            (lambda name=name: ctx.step.run(name, named, name)) for name in ("p1", "p2", "p3")
        )
        both = await ctx.group.parallel(steps)
        return [*both, await ctx.step.run("after", named, "after")]

    @fn("race")
    async def race(ctx: inngest.Context) -> list[str]:
        async def slow() -> str:
            await asyncio.sleep(1.5)
            return "slow"

        both = await ctx.group.parallel(
            (lambda: ctx.step.run("fast", named, "fast"), lambda: ctx.step.run("slow", slow)),
            parallel_mode=inngest.ParallelMode.RACE,
        )
        return list(both)

    async def on_failure_handler(ctx: inngest.Context) -> dict[str, Any]:
        return failure_record(ctx)

    @fn("on-failure", on_failure=on_failure_handler)
    async def on_failure(ctx: inngest.Context) -> None:
        raise inngest.NonRetriableError("boom")

    for fn_id in FLOW:

        @fn(fn_id)
        async def flow(ctx: inngest.Context, fn_id: str = fn_id) -> dict[str, Any]:
            hold = int(ctx.event.data.get("hold") or 0)
            await ctx.step.run("work", work_async, fn_id, ctx, hold)
            return flow_result(ctx)

    @fn("big-state")
    async def big_state(ctx: inngest.Context) -> dict[str, Any]:
        async def big(name: str) -> str:
            await work_async(name, ctx)
            return name * SIZE

        a = await ctx.step.run("a", big, "a")
        b = await ctx.step.run("b", big, "b")
        await ctx.step.sleep("nap", SECONDS)  # a new call, which carries no state, only use_api

        async def total() -> dict[str, Any]:
            await work_async("sum", ctx)
            return {"a": len(a), "b": len(b), "ends": a[-1] + b[-1]}

        return {**await ctx.step.run("sum", total), "token": ctx.event.data["token"]}

    @fn("two-steps")
    async def two_steps(ctx: inngest.Context) -> list[int]:
        return [await ctx.step.run("a", lambda: 1), await ctx.step.run("b", lambda: 2)]

    return functions


def sync_functions() -> list[inngest.Function[Any]]:
    """The same functions as a Flask app writes them: ``def``, ``ctx.step...``."""
    functions: list[inngest.Function[Any]] = []

    def fn(fn_id: str, **options: Any) -> Callable[[Any], inngest.Function[Any]]:
        def decorate(handler: Any) -> inngest.Function[Any]:
            def body(ctx: inngest.ContextSync) -> Any:
                entered(fn_id, ctx)
                return handler(ctx)

            body.__name__ = handler.__name__
            return register(functions, fn_id, body, options)

        return decorate

    def wait(ctx: inngest.ContextSync, token_only: bool, seconds: int) -> Any:
        event = "feat/wake" if seconds > 1 else "feat/never"
        got = ctx.step.wait_for_event(
            "wait", event=event, if_exp=wake_if(token_only), timeout=seconds * SECONDS
        )
        return None if got is None else got.data

    @fn("wait-match")
    def wait_match(ctx: inngest.ContextSync) -> Any:
        return wait(ctx, True, 60)

    @fn("wait-if")
    def wait_if(ctx: inngest.ContextSync) -> Any:
        return wait(ctx, False, 60)

    @fn("wait-timeout")
    def wait_timeout(ctx: inngest.ContextSync) -> Any:
        return {"got": wait(ctx, True, 1)}

    @fn("child")
    def child(ctx: inngest.ContextSync) -> int:
        def double() -> int:
            work("child", ctx)
            return int(ctx.event.data["n"]) * 2

        return ctx.step.run("double", double)

    @fn("child-fails")
    def child_fails(ctx: inngest.ContextSync) -> None:
        raise inngest.NonRetriableError("child says no")

    sleepers = {}
    for fn_id, (seconds, answer) in SLEEPERS.items():

        @fn(fn_id)
        def sleeper(ctx: inngest.ContextSync, seconds: int = seconds, answer: str = answer) -> str:
            ctx.step.sleep("long", seconds * SECONDS)
            return answer

        sleepers[fn_id] = sleeper
    child_slow = sleepers["child-slow"]

    @fn("invoke-ok")
    def invoke_ok(ctx: inngest.ContextSync) -> Any:
        data = {"n": 21, "token": ctx.event.data["token"]}
        return ctx.step.invoke("call", function=child, data=data)

    def invoke_catching(ctx: inngest.ContextSync, target: inngest.Function[Any], **kw: Any) -> Any:
        try:
            return {"ok": ctx.step.invoke("call", function=target, data={}, **kw)}
        except inngest.StepError as err:
            return {"caught": thrown(err)}

    @fn("invoke-fail")
    def invoke_fail(ctx: inngest.ContextSync) -> Any:
        return invoke_catching(ctx, child_fails)

    @fn("invoke-timeout")
    def invoke_timeout(ctx: inngest.ContextSync) -> Any:
        return invoke_catching(ctx, child_slow, timeout=SECONDS)

    @fn("parallel")
    def parallel(ctx: inngest.ContextSync) -> list[str]:
        steps = tuple(
            (lambda name=name: ctx.step.run(name, lambda: name)) for name in ("p1", "p2", "p3")
        )
        both = ctx.group.parallel(steps)
        return [*both, ctx.step.run("after", lambda: "after")]

    @fn("race")
    def race(ctx: inngest.ContextSync) -> list[str]:
        def slow() -> str:
            time.sleep(1.5)
            return "slow"

        both = ctx.group.parallel(
            (lambda: ctx.step.run("fast", lambda: "fast"), lambda: ctx.step.run("slow", slow)),
            parallel_mode=inngest.ParallelMode.RACE,
        )
        return list(both)

    @fn("on-failure", on_failure=failure_record)
    def on_failure(ctx: inngest.ContextSync) -> None:
        raise inngest.NonRetriableError("boom")

    for fn_id in FLOW:

        @fn(fn_id)
        def flow(ctx: inngest.ContextSync, fn_id: str = fn_id) -> dict[str, Any]:
            hold = int(ctx.event.data.get("hold") or 0)
            ctx.step.run("work", work, fn_id, ctx, hold)
            return flow_result(ctx)

    @fn("big-state")
    def big_state(ctx: inngest.ContextSync) -> dict[str, Any]:
        def big(name: str) -> str:
            work(name, ctx)
            return name * SIZE

        a = ctx.step.run("a", big, "a")
        b = ctx.step.run("b", big, "b")
        ctx.step.sleep("nap", SECONDS)  # a new call, which carries no state, only use_api

        def total() -> dict[str, Any]:
            work("sum", ctx)
            return {"a": len(a), "b": len(b), "ends": a[-1] + b[-1]}

        return {**ctx.step.run("sum", total), "token": ctx.event.data["token"]}

    @fn("two-steps")
    def two_steps(ctx: inngest.ContextSync) -> list[int]:
        return [ctx.step.run("a", lambda: 1), ctx.step.run("b", lambda: 2)]

    return functions


def main() -> None:
    port = int(os.environ["PORT"])
    if FRAMEWORK == "flask":
        import flask
        import inngest.flask

        flask_app = flask.Flask(__name__)
        inngest.flask.serve(flask_app, client, sync_functions())
        flask_app.run(host="127.0.0.1", port=port, threaded=True)
        return
    import inngest.fast_api
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    inngest.fast_api.serve(app, client, async_functions())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
