"""Middleware hooks: their order, how often they run, and what each may change.

Each test drives the serve endpoint in-process with call bodies shaped like the server's,
one request at a time, the way the server would during a run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from sdk_support import App, call_body, dev_client, h, ops

import stepwise
from stepwise import FunctionRun, Middleware, Output, RunInput, SendInput, SendOutput, StepInfo
from stepwise.protocol import loads


class Recorder(Middleware):
    """Writes ``<tag>.<hook>`` for every hook into a shared journal."""

    def __init__(self, tag: str, journal: list[str]) -> None:
        self.tag = tag
        self.journal = journal

    def _note(self, what: str) -> None:
        self.journal.append(f"{self.tag}.{what}")

    def on_register(self, client: stepwise.Stepwise, function: stepwise.Function | None) -> None:
        self._note(f"on_register:{function.fn_id if function else '-'}")

    def transform_input(self, run: FunctionRun, input: RunInput) -> None:
        self._note("transform_input")

    async def before_memoization(self, run: FunctionRun) -> None:
        self._note("before_memoization")

    def after_memoization(self, run: FunctionRun) -> None:
        self._note("after_memoization")

    async def before_execution(self, run: FunctionRun) -> None:
        self._note("before_execution")

    def after_execution(self, run: FunctionRun) -> None:
        self._note("after_execution")

    def transform_output(self, run: FunctionRun, output: Output) -> None:
        if output.step is None:
            what = "error" if output.error is not None else "function"
        else:
            what = output.step.id + ("" if output.has_data else ":op")
        self._note(f"transform_output:{what}")

    def finished(self, run: FunctionRun, output: Output) -> None:
        self._note("finished")

    async def before_response(self, run: FunctionRun) -> None:
        self._note("before_response")

    async def wrap_step(self, run: FunctionRun, step: StepInfo, call_next: Any) -> Any:
        self._note(f"wrap_step:{step.id}>")
        try:
            return await call_next()
        finally:
            self._note(f"wrap_step:{step.id}<")

    def transform_send_input(self, send: SendInput) -> None:
        self._note("transform_send_input")

    def transform_send_output(self, send: SendOutput) -> None:
        self._note("transform_send_output")


def without(journal: list[str], prefix: str) -> list[str]:
    return [line for line in journal if not line.startswith(prefix)]


def two_step_function(
    client: stepwise.Stepwise, journal: list[str], *, sync: bool, middleware: list[Middleware]
) -> stepwise.Function:
    def work(name: str) -> str:
        journal.append(f"body:{name}")
        return name.upper()

    if sync:

        @client.create_function(
            fn_id="flow", trigger=stepwise.TriggerEvent(event="x"), middleware=middleware
        )
        def flow_sync(ctx: stepwise.SyncContext) -> list[str]:
            return [ctx.step.run("a", work, "a"), ctx.step.run("b", work, "b")]

        return flow_sync

    @client.create_function(
        fn_id="flow", trigger=stepwise.TriggerEvent(event="x"), middleware=middleware
    )
    async def flow(ctx: stepwise.Context) -> list[str]:
        return [await ctx.step.run("a", work, "a"), await ctx.step.run("b", work, "b")]

    return flow


def request_running(step: str) -> list[str]:
    """The journal of one request that runs ``step``: client middleware outside fn's."""
    return [
        "client.transform_input",
        "fn.transform_input",
        "client.before_memoization",
        "fn.before_memoization",
        "fn.after_memoization",
        "client.after_memoization",
        "client.before_execution",
        "fn.before_execution",
        f"client.wrap_step:{step}>",
        f"fn.wrap_step:{step}>",
        f"body:{step}",
        f"fn.wrap_step:{step}<",
        f"client.wrap_step:{step}<",
        "fn.after_execution",
        "client.after_execution",
        f"fn.transform_output:{step}",
        f"client.transform_output:{step}",
        "fn.before_response",
        "client.before_response",
    ]


@pytest.mark.parametrize("sync", [False, True], ids=["async-def", "def"])
async def test_hooks_run_once_per_request_in_registration_order_then_reverse(sync: bool) -> None:
    journal: list[str] = []
    client = dev_client(middleware=[Recorder("client", journal)])
    fn = two_step_function(client, journal, sync=sync, middleware=[Recorder("fn", journal)])
    assert journal == ["client.on_register:-", "fn.on_register:flow"]
    journal.clear()
    async with App(client, [fn]) as app:
        # Request 1: no memos, step a runs at once.
        first = ops(await app.call(fn, call_body()))
        assert first[0]["data"] == "A"
        assert journal == request_running("a")
        journal.clear()
        # Request 2: a is memoized (no wrap_step for it), b runs.
        await app.call(fn, call_body(steps={h("a"): {"data": "A"}}))
        assert journal == request_running("b")
        journal.clear()
        # Request 3: both memoized, the function returns: finished.
        done = await app.call(fn, call_body(steps={h("a"): {"data": "A"}, h("b"): {"data": "B"}}))
        assert loads(done.content) == ["A", "B"]
        assert without(journal, "client.") == [
            "fn.transform_input",
            "fn.before_memoization",
            "fn.after_memoization",
            "fn.before_execution",
            "fn.after_execution",
            "fn.transform_output:function",
            "fn.finished",
            "fn.before_response",
        ]
        assert len(journal) == 16


async def test_parallel_steps_each_get_transform_output_and_the_target_alone_is_wrapped() -> None:
    journal: list[str] = []
    client = dev_client(middleware=[Recorder("mw", journal)])

    @client.create_function(fn_id="fan", trigger=stepwise.TriggerEvent(event="x"))
    async def fan(ctx: stepwise.Context) -> list[int]:
        return list(
            await asyncio.gather(ctx.step.run("a", lambda: 1), ctx.step.run("b", lambda: 2))
        )

    async with App(client, [fan]) as app:
        planned = ops(await app.call(fan, call_body()))
        assert [op["op"] for op in planned] == ["StepPlanned", "StepPlanned"]
        assert journal.count("mw.before_execution") == 1
        assert [j for j in journal if "transform_output" in j] == [
            "mw.transform_output:a:op",
            "mw.transform_output:b:op",
        ]
        assert not [j for j in journal if "wrap_step" in j]
        journal.clear()
        ran = ops(await app.call(fan, call_body(), step_id=h("b")))
        assert ran == [
            {
                "op": "StepRun",
                "id": h("b"),
                "name": "b",
                "displayName": "b",
                "data": 2,
                "userland": {"id": "b", "index": 0},
            }
        ]
        assert [j for j in journal if "wrap_step" in j or "transform_output" in j] == [
            "mw.wrap_step:b>",
            "mw.wrap_step:b<",
            "mw.transform_output:b",
        ]
        journal.clear()
        done = await app.call(fan, call_body(steps={h("a"): {"data": 1}, h("b"): {"data": 2}}))
        assert loads(done.content) == [1, 2]
        assert journal.count("mw.finished") == 1


async def test_step_retries_and_function_failure_reach_transform_output_and_finished() -> None:
    journal: list[str] = []
    errors: list[tuple[str, str]] = []

    class Errors(Middleware):
        def transform_output(self, run: FunctionRun, output: Output) -> None:
            if output.error is not None:
                where = output.step.id if output.step else "function"
                errors.append((where, f"attempt {run.attempt}: {output.error}"))

    client = dev_client(middleware=[Recorder("mw", journal), Errors()])

    @client.create_function(fn_id="flaky", trigger=stepwise.TriggerEvent(event="x"), retries=1)
    async def flaky(ctx: stepwise.Context) -> None:
        def boom() -> None:
            raise RuntimeError("step broke")

        if ctx.event.data.get("in_function"):
            raise RuntimeError("function broke")
        await ctx.step.run("s", boom)

    async with App(client, [flaky]) as app:
        first = ops(await app.call(flaky, call_body(attempt=0, max_attempts=2)))
        assert first[0]["op"] == "StepError"
        second = ops(await app.call(flaky, call_body(attempt=1, max_attempts=2)))
        assert second[0]["op"] == "StepFailed"
        assert "mw.finished" not in journal
        # A step failed for good: its StepError ends the run at once.
        failed = {h("s"): {"error": {"name": "RuntimeError", "message": "step broke"}}}
        response = await app.call(flaky, call_body(steps=failed, max_attempts=2))
        assert response.headers["x-inngest-no-retry"] == "true"
        assert journal.count("mw.finished") == 1
        # The function itself fails: retried, so finished only on the last attempt.
        event = {"name": "x", "data": {"in_function": True}}
        response = await app.call(flaky, call_body(event=event, attempt=0, max_attempts=2))
        assert response.headers["x-inngest-no-retry"] == "false"
        assert journal.count("mw.finished") == 1
        response = await app.call(flaky, call_body(event=event, attempt=1, max_attempts=2))
        assert response.status_code == 500
    assert journal.count("mw.finished") == 2
    assert errors == [
        ("s", "attempt 0: step broke"),
        ("s", "attempt 1: step broke"),
        ("function", "attempt 0: step broke"),
        ("function", "attempt 0: function broke"),
        ("function", "attempt 1: function broke"),
    ]


async def test_transform_input_changes_the_event_the_memos_and_injects_deps() -> None:
    class Rewrite(Middleware):
        def transform_input(self, run: FunctionRun, input: RunInput) -> None:
            input.event = stepwise.Event(name=input.event.name, data={"who": "rewritten"})
            input.events = [input.event]
            for memo in input.steps.values():
                memo.data = memo.data * 10
            input.deps["db"] = {"users": 3}

    client = dev_client(middleware=[Rewrite()])

    @client.create_function(fn_id="f", trigger=stepwise.TriggerEvent(event="x"))
    async def f(ctx: stepwise.Context) -> dict[str, Any]:
        n = await ctx.step.run("n", lambda: 1)
        return {"who": ctx.event.data["who"], "n": n, "users": ctx.deps.db["users"]}

    async with App(client, [f]) as app:
        done = await app.call(f, call_body(steps={h("n"): {"data": 4}}))
    assert loads(done.content) == {"who": "rewritten", "n": 40, "users": 3}


async def test_dependencies_middleware_and_a_missing_dependency() -> None:
    client = dev_client(middleware=[stepwise.Dependencies(db="the-db")])

    @client.create_function(fn_id="f", trigger=stepwise.TriggerEvent(event="x"))
    def f(ctx: stepwise.SyncContext) -> list[Any]:
        try:
            ctx.deps.cache  # noqa: B018 - the access is what is tested
        except AttributeError as exc:
            missing = str(exc)
        return [ctx.deps.db, "db" in ctx.deps, missing]

    async with App(client, [f]) as app:
        done = await app.call(f, call_body())
    db, present, missing = loads(done.content)
    assert (db, present) == ("the-db", True)
    assert "no dependency 'cache'" in missing and "injected: db" in missing


async def test_transform_output_and_wrap_step_change_results_and_errors() -> None:
    class Shape(Middleware):
        async def wrap_step(self, run: FunctionRun, step: StepInfo, call_next: Any) -> Any:
            assert step.kind == "run"
            if step.id == "swallow":
                try:
                    return await call_next()
                except ValueError as exc:
                    return f"recovered from {exc} with input {step.input}"
            return await call_next()

        def transform_output(self, run: FunctionRun, output: Output) -> None:
            if output.step is not None and output.step.id == "doubled":
                output.data = output.data * 2
            if output.step is None and output.error is not None:
                output.error = stepwise.NonRetriableError(f"wrapped: {output.error}")

    client = dev_client(middleware=[Shape()])

    @client.create_function(fn_id="f", trigger=stepwise.TriggerEvent(event="x"))
    async def f(ctx: stepwise.Context) -> None:
        def bad(x: int, *, y: int) -> None:
            raise ValueError("bad input")

        await ctx.step.run("swallow", bad, 1, y=2)
        await ctx.step.run("doubled", lambda: 21)
        raise RuntimeError("the end")

    async with App(client, [f]) as app:
        swallowed = ops(await app.call(f, call_body()))
        assert swallowed[0]["op"] == "StepRun"
        assert swallowed[0]["data"] == "recovered from bad input with input (1, {'y': 2})"
        doubled = ops(await app.call(f, call_body(steps={h("swallow"): {"data": "r"}})))
        assert doubled[0]["data"] == 42
        memos = {h("swallow"): {"data": "r"}, h("doubled"): {"data": 42}}
        failed = await app.call(f, call_body(steps=memos))
    assert failed.status_code == 500
    assert failed.headers["x-inngest-no-retry"] == "true"
    body = loads(failed.content)
    assert body["name"] == "NonRetriableError"
    assert body["message"] == "wrapped: the end"


async def test_transform_output_sees_op_options_and_may_change_them() -> None:
    class Stamp(Middleware):
        def transform_output(self, run: FunctionRun, output: Output) -> None:
            if output.step is not None and output.step.kind == "invoke":
                assert output.opts is not None and not output.has_data
                output.opts["payload"]["data"]["stamped"] = True

    client = dev_client(middleware=[Stamp()])

    @client.create_function(fn_id="f", trigger=stepwise.TriggerEvent(event="x"))
    async def f(ctx: stepwise.Context) -> Any:
        return await ctx.step.invoke("call", function="demo-other", data={"n": 1})

    async with App(client, [f]) as app:
        [op] = ops(await app.call(f, call_body()))
    assert op["op"] == "InvokeFunction"
    assert op["opts"]["payload"] == {"data": {"n": 1, "stamped": True}}


async def test_memoized_steps_are_wrapped_only_for_middleware_that_asks() -> None:
    seen: list[tuple[str, str, bool]] = []

    class Plain(Middleware):
        async def wrap_step(self, run: FunctionRun, step: StepInfo, call_next: Any) -> Any:
            seen.append(("plain", step.id, step.memoized))
            return await call_next()

    class Replays(Middleware):
        wrap_memoized_steps = True

        async def wrap_step(self, run: FunctionRun, step: StepInfo, call_next: Any) -> Any:
            seen.append(("replays", step.id, step.memoized))
            value = await call_next()
            return value + 1 if step.kind == "run" and step.memoized else value

    client = dev_client(middleware=[Plain(), Replays()])

    @client.create_function(fn_id="f", trigger=stepwise.TriggerEvent(event="x"))
    async def f(ctx: stepwise.Context) -> int:
        a = await ctx.step.run("a", lambda: 1)
        await ctx.step.sleep("nap", 1)
        return a

    async with App(client, [f]) as app:
        await app.call(f, call_body())
        seen.clear()
        done = await app.call(f, call_body(steps={h("a"): {"data": 1}, h("nap"): {"data": None}}))
    assert loads(done.content) == 2
    assert seen == [("replays", "a", True), ("replays", "nap", True)]


async def test_logger_middleware_is_silent_while_replaying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = dev_client(logger=logging.getLogger("stepwise.mwtest"))
    assert isinstance(client.middleware[0], stepwise.LoggerMiddleware)

    @client.create_function(fn_id="chatty", trigger=stepwise.TriggerEvent(event="x"))
    async def chatty(ctx: stepwise.Context) -> None:
        ctx.logger.info("start")
        await asyncio.gather(ctx.step.run("a", lambda: 1), ctx.step.run("b", lambda: 2))
        ctx.logger.info("after both")

    caplog.set_level(logging.INFO, logger="stepwise.mwtest")
    async with App(client, [chatty]) as app:
        await app.call(chatty, call_body())
        assert [r.getMessage() for r in caplog.records] == ["start"]
        caplog.clear()
        await app.call(chatty, call_body(steps={h("a"): {"data": 1}}), step_id=h("b"))
        assert [r.getMessage() for r in caplog.records] == []
        await app.call(chatty, call_body(steps={h("a"): {"data": 1}, h("b"): {"data": 2}}))
        assert [r.getMessage() for r in caplog.records] == ["after both"]


async def test_a_failing_hook_fails_the_request_and_before_response_still_runs() -> None:
    journal: list[str] = []

    class Broken(Middleware):
        def after_memoization(self, run: FunctionRun) -> None:
            raise RuntimeError("hook broke")

    client = dev_client(middleware=[Recorder("mw", journal), Broken()])
    calls: list[str] = []

    @client.create_function(fn_id="f", trigger=stepwise.TriggerEvent(event="x"))
    async def f(ctx: stepwise.Context) -> None:
        await ctx.step.run("a", lambda: 1)
        await ctx.step.run("b", lambda: calls.append("b"))

    async with App(client, [f]) as app:
        response = await app.call(f, call_body(steps={h("a"): {"data": 1}}))
    assert response.status_code == 500
    assert loads(response.content)["message"] == "hook broke"
    assert calls == []
    # The hook's error is the function's: transform_output sees it; not final, not finished.
    assert journal[-2:] == ["mw.transform_output:error", "mw.before_response"]
    assert "mw.before_execution" not in journal and "mw.finished" not in journal


async def test_send_hooks_transform_events_outward_in_reverse_order() -> None:
    sent: list[Any] = []

    def api(request: httpx.Request) -> httpx.Response:
        sent.append(loads(request.content))
        return httpx.Response(200, json={"ids": ["E1"], "status": 200})

    journal: list[str] = []

    class Tag(Middleware):
        def __init__(self, tag: str) -> None:
            self.tag = tag

        def transform_send_input(self, send: SendInput) -> None:
            journal.append(f"{self.tag}.in")
            for event in send.events:
                event["data"]["path"] = [*event["data"].get("path", []), self.tag]

        async def transform_send_output(self, send: SendOutput) -> None:
            journal.append(f"{self.tag}.out")
            send.ids = [f"{self.tag}:{i}" for i in send.ids]

    client = dev_client(
        httpx.MockTransport(api), event_key="k", middleware=[Tag("outer"), Tag("inner")]
    )
    ids = await client.send({"name": "a/b", "data": {}})
    assert sent[0][0]["data"]["path"] == ["inner", "outer"]
    assert journal == ["inner.in", "outer.in", "outer.out", "inner.out"]
    assert ids == ["inner:outer:E1"]
    journal.clear()
    assert await asyncio.to_thread(client.send_sync, {"name": "a/b"}) == ["inner:outer:E1"]
    assert journal == ["inner.in", "outer.in", "outer.out", "inner.out"]


def test_middleware_must_be_middleware_and_on_register_must_be_plain() -> None:
    with pytest.raises(stepwise.ConfigError, match="Middleware instances"):
        dev_client(middleware=[object()])  # type: ignore[list-item]

    class AsyncRegister(Middleware):
        async def on_register(  # type: ignore[override]
            self, client: stepwise.Stepwise, function: stepwise.Function | None
        ) -> None:
            pass

    with pytest.raises(stepwise.ConfigError, match="must not be async"):
        dev_client(middleware=[AsyncRegister()])
