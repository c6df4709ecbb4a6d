"""``def`` handlers get plain-call step tools and run off the event loop."""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import pytest
from sdk_support import App, call_body, dev_client, h, ops

import stepwise
from stepwise.protocol import loads


async def test_def_handler_uses_sync_step_tools_in_a_worker_thread() -> None:
    client = dev_client()
    loop_thread = threading.get_ident()
    threads: list[int] = []

    @client.create_function(fn_id="sync-one", trigger=stepwise.TriggerEvent(event="x"))
    def sync_one(ctx: stepwise.SyncContext) -> dict[str, Any]:
        threads.append(threading.get_ident())

        async def fetch_async() -> int:
            return 41

        n = ctx.step.run("async-fn", fetch_async)
        m = ctx.step.run("plain", lambda: n + 1)
        ctx.step.sleep("nap", 60)
        return {"n": n, "m": m}

    async with App(client, [sync_one]) as app:
        first = ops(await app.call(sync_one, call_body()))
        second = ops(await app.call(sync_one, call_body(steps={h("async-fn"): {"data": 41}})))
        third = ops(
            await app.call(
                sync_one, call_body(steps={h("async-fn"): {"data": 41}, h("plain"): {"data": 42}})
            )
        )
        done = await app.call(
            sync_one,
            call_body(
                steps={h("async-fn"): {"data": 41}, h("plain"): {"data": 42}, h("nap"): None}
            ),
        )
    assert first[0]["data"] == 41
    assert second[0]["data"] == 42
    assert third[0]["op"] == "Sleep"
    assert loads(done.content) == {"n": 41, "m": 42}
    assert threads and loop_thread not in threads


async def test_def_handler_step_failure_and_memo_error() -> None:
    client = dev_client()

    @client.create_function(fn_id="sync-fail", trigger=stepwise.TriggerEvent(event="x"))
    def sync_fail(ctx: stepwise.SyncContext) -> str:
        def boom() -> None:
            raise RuntimeError("nope")

        try:
            ctx.step.run("boom", boom)
        except stepwise.StepError as err:
            return f"caught {err.message}"
        return "ran"

    async with App(client, [sync_fail]) as app:
        failing = ops(await app.call(sync_fail, call_body(attempt=0)))
        caught = await app.call(
            sync_fail, call_body(steps={h("boom"): {"error": {"name": "E", "message": "nope"}}})
        )
    assert failing[0]["op"] == "StepError"
    assert loads(caught.content) == "caught nope"


async def test_def_handler_send_event_uses_the_sync_client() -> None:
    def event_api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ids": ["E1"], "status": 200})

    client = dev_client(httpx.MockTransport(event_api))

    @client.create_function(fn_id="sync-send", trigger=stepwise.TriggerEvent(event="x"))
    def sync_send(ctx: stepwise.SyncContext) -> list[str]:
        return ctx.step.send_event("send", stepwise.Event(name="a/b"))

    async with App(client, [sync_send]) as app:
        result = ops(await app.call(sync_send, call_body()))
    assert result[0]["data"] == {"ids": ["E1"]}
    assert result[0]["opts"] == {"type": "step.sendEvent"}


async def test_logger_is_silent_while_replaying(caplog: pytest.LogCaptureFixture) -> None:
    client = dev_client(logger=logging.getLogger("stepwise.test"))

    @client.create_function(fn_id="chatty", trigger=stepwise.TriggerEvent(event="x"))
    async def chatty(ctx: stepwise.Context) -> None:
        ctx.logger.info("start")
        await ctx.step.run("a", lambda: 1)
        ctx.logger.info("after a")
        await ctx.step.run("b", lambda: 2)
        ctx.logger.warning("after b")

    caplog.set_level(logging.INFO, logger="stepwise.test")
    async with App(client, [chatty]) as app:
        await app.call(chatty, call_body())
        assert [r.getMessage() for r in caplog.records] == ["start"]
        caplog.clear()
        await app.call(chatty, call_body(steps={h("a"): {"data": 1}}))
        assert [r.getMessage() for r in caplog.records] == ["after a"]
        caplog.clear()
        await app.call(chatty, call_body(steps={h("a"): {"data": 1}, h("b"): {"data": 2}}))
        assert [r.getMessage() for r in caplog.records] == ["after b"]


async def test_def_handler_threads_may_call_step_tools() -> None:
    client = dev_client()

    @client.create_function(fn_id="own-thread", trigger=stepwise.TriggerEvent(event="x"))
    def own_thread(ctx: stepwise.SyncContext) -> Any:
        results: list[Any] = []
        worker = threading.Thread(target=lambda: results.append(ctx.step.run("a", lambda: 1)))
        worker.start()
        worker.join()
        return results

    async with App(client, [own_thread]) as app:
        done = await app.call(own_thread, call_body(steps={h("a"): {"data": 1}}))
    assert loads(done.content) == [1]


async def test_waiting_steps_are_released_so_finally_blocks_run() -> None:
    client = dev_client()
    cleaned: list[str] = []

    @client.create_function(fn_id="cleanup", trigger=stepwise.TriggerEvent(event="x"))
    def cleanup(ctx: stepwise.SyncContext) -> None:
        try:
            ctx.step.sleep("nap", 60)
        finally:
            cleaned.append("sync")

    @client.create_function(fn_id="cleanup-async", trigger=stepwise.TriggerEvent(event="x"))
    async def cleanup_async(ctx: stepwise.Context) -> None:
        try:
            await ctx.step.wait_for_event("w", event="e", timeout=60)
        finally:
            cleaned.append("async")

    async with App(client, [cleanup, cleanup_async]) as app:
        first = ops(await app.call(cleanup, call_body()))
        second = ops(await app.call(cleanup_async, call_body()))
    assert [first[0]["op"], second[0]["op"]] == ["Sleep", "WaitForEvent"]
    assert sorted(cleaned) == ["async", "sync"]
