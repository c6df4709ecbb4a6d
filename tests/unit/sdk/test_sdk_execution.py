"""Call requests against async handlers: discovery, replay, targeted steps and failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sdk_support import App, call_body, dev_client, h, ops

import stepwise
from stepwise.protocol import loads, parse_timestamp


def two_steps(client: stepwise.Stepwise, calls: list[str]) -> stepwise.Function:
    @client.create_function(fn_id="flow", trigger=stepwise.TriggerEvent(event="user/signup"))
    async def flow(ctx: stepwise.Context) -> Any:
        async def first() -> dict[str, int]:
            calls.append("a")
            return {"n": 1}

        def second(n: int) -> int:
            calls.append("b")
            return n + 1

        a = await ctx.step.run("a", first)
        b = await ctx.step.run("b", second, a["n"])
        return {"a": a, "b": b, "email": ctx.event.data["email"]}

    return flow


async def test_discovery_executes_the_first_new_step_immediately() -> None:
    calls: list[str] = []
    client = dev_client()
    fn = two_steps(client, calls)
    async with App(client, [fn]) as app:
        response = await app.call(fn, call_body())
    assert ops(response) == [
        {
            "op": "StepRun",
            "id": h("a"),
            "name": "a",
            "displayName": "a",
            "data": {"n": 1},
            "userland": {"id": "a", "index": 0},
        }
    ]
    assert calls == ["a"]
    assert response.headers["x-inngest-sdk"] == "stepwise-py:v0.1.0"
    assert response.headers["x-inngest-req-version"] == "2"
    assert response.headers["x-inngest-framework"] == "starlette"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-inngest-no-retry"] == "false"
    assert "x-inngest-signature" not in response.headers


async def test_replay_returns_memos_and_runs_only_the_next_step() -> None:
    calls: list[str] = []
    client = dev_client()
    fn = two_steps(client, calls)
    async with App(client, [fn]) as app:
        second = await app.call(fn, call_body(steps={h("a"): {"data": {"n": 1}}}))
        assert calls == ["b"]
        assert ops(second)[0]["id"] == h("b")
        assert ops(second)[0]["data"] == 2
        done = await app.call(
            fn, call_body(steps={h("a"): {"data": {"n": 1}}, h("b"): {"data": 2}})
        )
    assert calls == ["b"]
    assert done.status_code == 200
    assert loads(done.content) == {"a": {"n": 1}, "b": 2, "email": "a@example.com"}


async def test_disabled_immediate_execution_plans_the_step() -> None:
    calls: list[str] = []
    client = dev_client()
    fn = two_steps(client, calls)
    async with App(client, [fn]) as app:
        response = await app.call(fn, call_body(disable_immediate_execution=True))
    assert ops(response) == [
        {
            "op": "StepPlanned",
            "id": h("a"),
            "name": "a",
            "displayName": "a",
            "userland": {"id": "a", "index": 0},
        }
    ]
    assert calls == []


async def test_targeted_call_runs_exactly_that_step() -> None:
    calls: list[str] = []
    client = dev_client()
    fn = two_steps(client, calls)
    async with App(client, [fn]) as app:
        response = await app.call(
            fn,
            call_body(steps={h("a"): {"data": {"n": 1}}}, disable_immediate_execution=True),
            step_id=h("b"),
        )
        assert [op["op"] for op in ops(response)] == ["StepRun"]
        assert ops(response)[0]["data"] == 2
        # A target that the run never reaches is an error, not a silent success.
        missing = await app.call(fn, call_body(), step_id=h("nowhere"))
    assert calls == ["b"]
    assert missing.status_code == 500
    assert loads(missing.content)["code"] == "step_not_found"


async def test_function_returning_none_is_200_null() -> None:
    client = dev_client()

    @client.create_function(fn_id="nothing", trigger=stepwise.TriggerEvent(event="x"))
    async def nothing(ctx: stepwise.Context) -> None:
        return None

    async with App(client, [nothing]) as app:
        response = await app.call(nothing, call_body())
    assert response.status_code == 200
    assert response.content == b"null"


async def test_sleep_reports_an_absolute_wake_time_and_continues_on_null_memo() -> None:
    client = dev_client()

    @client.create_function(fn_id="napper", trigger=stepwise.TriggerEvent(event="x"))
    async def napper(ctx: stepwise.Context) -> str:
        await ctx.step.sleep("nap", "1h30m")
        await ctx.step.sleep("short", timedelta(seconds=5))
        await ctx.step.sleep_until("until", datetime(2030, 1, 2, 3, 4, 5))
        return "rested"

    async with App(client, [napper]) as app:
        before = datetime.now(UTC)
        first = ops(await app.call(napper, call_body()))
        assert len(first) == 1
        op = first[0]
        assert op["op"] == "Sleep"
        assert op["id"] == h("nap")
        assert op["displayName"] == "nap"
        assert op["name"].endswith("Z")
        wake = parse_timestamp(op["name"])
        expected = before + timedelta(hours=1, minutes=30)
        assert abs((wake - expected).total_seconds()) < 5

        second = ops(await app.call(napper, call_body(steps={h("nap"): None})))
        assert second[0]["id"] == h("short")

        third = ops(await app.call(napper, call_body(steps={h("nap"): None, h("short"): None})))
        assert third[0]["name"] == "2030-01-02T03:04:05.000Z"

        done = await app.call(
            napper, call_body(steps={h("nap"): None, h("short"): None, h("until"): None})
        )
    assert done.status_code == 200
    assert loads(done.content) == "rested"


async def test_send_event_step_sends_once_and_replays_ids() -> None:
    sent: list[httpx.Request] = []

    def event_api(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"ids": ["01HID1", "01HID2"], "status": 200})

    client = dev_client(httpx.MockTransport(event_api))

    @client.create_function(fn_id="fanout", trigger=stepwise.TriggerEvent(event="x"))
    async def fanout(ctx: stepwise.Context) -> list[str]:
        return await ctx.step.send_event(
            "notify",
            [stepwise.Event(name="a/one", data={"k": 1}), {"name": "a/two"}],
        )

    async with App(client, [fanout]) as app:
        first = ops(await app.call(fanout, call_body()))
        assert first == [
            {
                "op": "StepRun",
                "id": h("notify"),
                "name": "notify",
                "displayName": "notify",
                "opts": {"type": "step.sendEvent"},
                "data": {"ids": ["01HID1", "01HID2"]},
                "userland": {"id": "notify", "index": 0},
            }
        ]
        done = await app.call(
            fanout, call_body(steps={h("notify"): {"data": {"ids": ["01HID1", "01HID2"]}}})
        )
    assert loads(done.content) == ["01HID1", "01HID2"]
    assert len(sent) == 1
    assert str(sent[0].url) == "http://127.0.0.1:8288/e/NO_EVENT_KEY_SET"
    assert [e["name"] for e in loads(sent[0].content)] == ["a/one", "a/two"]


def failing(client: stepwise.Stepwise, exc: Exception) -> stepwise.Function:
    @client.create_function(fn_id="fails", trigger=stepwise.TriggerEvent(event="x"))
    async def fails(ctx: stepwise.Context) -> str:
        def boom() -> None:
            raise exc

        await ctx.step.run("boom", boom)
        return "unreachable"

    return fails


async def test_step_error_is_retried_until_the_last_attempt_then_fails() -> None:
    client = dev_client()
    fn = failing(client, ValueError("bad input"))
    async with App(client, [fn]) as app:
        early = ops(await app.call(fn, call_body(attempt=0, max_attempts=3)))
        last = ops(await app.call(fn, call_body(attempt=2, max_attempts=3)))
    assert early[0]["op"] == "StepError"
    assert early[0]["id"] == h("boom")
    assert early[0]["error"]["name"] == "ValueError"
    assert early[0]["error"]["message"] == "bad input"
    assert "Traceback" in early[0]["error"]["stack"]
    assert last[0]["op"] == "StepFailed"


async def test_max_attempts_falls_back_to_the_function_retries() -> None:
    client = dev_client()

    @client.create_function(fn_id="once", trigger=stepwise.TriggerEvent(event="x"), retries=0)
    async def once(ctx: stepwise.Context) -> None:
        def boom() -> None:
            raise RuntimeError("no")

        await ctx.step.run("boom", boom)

    async with App(client, [once]) as app:
        result = ops(await app.call(once, call_body(max_attempts=None)))
    assert result[0]["op"] == "StepFailed"


async def test_non_retriable_error_in_a_step_fails_it_at_once() -> None:
    client = dev_client()
    fn = failing(client, stepwise.NonRetriableError("never works"))
    async with App(client, [fn]) as app:
        result = ops(await app.call(fn, call_body(attempt=0)))
    assert result[0]["op"] == "StepFailed"
    assert result[0]["error"]["name"] == "NonRetriableError"
    assert result[0]["error"]["message"] == "never works"


async def test_retry_after_error_in_a_step_sets_retry_after() -> None:
    client = dev_client()
    at = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    fn = failing(client, stepwise.RetryAfterError("slow down", at))
    async with App(client, [fn]) as app:
        response = await app.call(fn, call_body(attempt=0))
    assert ops(response)[0]["op"] == "StepError"
    assert response.headers["retry-after"] == "2031-05-06T07:08:09.000Z"


async def test_failed_step_memo_raises_step_error_that_user_code_can_catch() -> None:
    client = dev_client()

    @client.create_function(fn_id="recover", trigger=stepwise.TriggerEvent(event="x"))
    async def recover(ctx: stepwise.Context) -> dict[str, str]:
        try:
            await ctx.step.run("flaky", lambda: 1)
        except stepwise.StepError as err:
            return {"name": err.name, "message": err.message, "stack": err.stack or ""}
        return {}

    memo = {"error": {"name": "ValueError", "message": "bad", "stack": "trace"}}
    async with App(client, [recover]) as app:
        response = await app.call(recover, call_body(steps={h("flaky"): memo}))
    assert response.status_code == 200
    assert loads(response.content) == {"name": "ValueError", "message": "bad", "stack": "trace"}


async def test_uncaught_step_error_fails_the_function_without_retry() -> None:
    client = dev_client()
    fn = failing(client, ValueError("x"))
    memo = {"error": {"name": "ValueError", "message": "gave up"}}
    async with App(client, [fn]) as app:
        response = await app.call(fn, call_body(steps={h("boom"): memo}))
    assert response.status_code == 500
    assert response.headers["x-inngest-no-retry"] == "true"
    body = loads(response.content)
    assert body["code"] == "step_errored"
    assert body["message"] == "gave up"


async def test_function_errors_map_to_500_with_retry_headers() -> None:
    client = dev_client()

    def raiser(fn_id: str, exc: Exception) -> stepwise.Function:
        @client.create_function(fn_id=fn_id, trigger=stepwise.TriggerEvent(event="x"))
        async def handler(ctx: stepwise.Context) -> None:
            raise exc

        return handler

    at = datetime(2032, 1, 1, tzinfo=UTC)
    plain = raiser("plain", KeyError("k"))
    final = raiser("final", stepwise.NonRetriableError("stop"))
    later = raiser("later", stepwise.RetryAfterError("later", at))
    async with App(client, [plain, final, later]) as app:
        r_plain = await app.call(plain, call_body())
        r_final = await app.call(final, call_body())
        r_later = await app.call(later, call_body())
    assert r_plain.status_code == r_final.status_code == r_later.status_code == 500
    assert r_plain.headers["x-inngest-no-retry"] == "false"
    assert loads(r_plain.content)["name"] == "KeyError"
    assert set(loads(r_plain.content)) == {"name", "message", "stack", "code"}
    assert r_final.headers["x-inngest-no-retry"] == "true"
    assert loads(r_final.content)["code"] == "non_retriable_error"
    assert r_later.headers["x-inngest-no-retry"] == "false"
    assert r_later.headers["retry-after"] == "2032-01-01T00:00:00.000Z"


async def test_repeated_step_ids_get_index_suffixes() -> None:
    client = dev_client()

    @client.create_function(fn_id="loop", trigger=stepwise.TriggerEvent(event="x"))
    async def loop(ctx: stepwise.Context) -> list[int]:
        return [await ctx.step.run("my-step-id", lambda n: n, i) for i in range(3)]

    first_memo = {h("my-step-id"): {"data": 0}}
    all_memos = {**first_memo, h("my-step-id:1"): {"data": 1}, h("my-step-id:2"): {"data": 2}}
    async with App(client, [loop]) as app:
        first = ops(await app.call(loop, call_body(steps=first_memo)))
        done = await app.call(loop, call_body(steps=all_memos))
    # The reference's vector for the second use of "my-step-id".
    assert first[0]["id"] == "f47c6228c581af870aa285200cf95ec3ac59bb6a"
    assert first[0]["name"] == "my-step-id"
    assert first[0]["userland"] == {"id": "my-step-id", "index": 1}
    assert loads(done.content) == [0, 1, 2]


async def test_except_exception_in_user_code_cannot_swallow_the_interrupt() -> None:
    client = dev_client()
    after: list[str] = []

    @client.create_function(fn_id="greedy", trigger=stepwise.TriggerEvent(event="x"))
    async def greedy(ctx: stepwise.Context) -> str:
        try:
            await ctx.step.run("a", lambda: "A")
        except Exception:
            after.append("swallowed")
        after.append("continued")
        return "done"

    async with App(client, [greedy]) as app:
        response = await app.call(greedy, call_body())
    assert ops(response)[0]["data"] == "A"
    assert after == []


async def test_unserializable_step_output_fails_the_step_for_good() -> None:
    client = dev_client()

    @client.create_function(fn_id="odd", trigger=stepwise.TriggerEvent(event="x"))
    async def odd(ctx: stepwise.Context) -> None:
        await ctx.step.run("obj", object)

    async with App(client, [odd]) as app:
        result = ops(await app.call(odd, call_body(attempt=0)))
    assert result[0]["op"] == "StepFailed"
    assert result[0]["error"]["name"] == "OutputUnserializableError"


async def test_context_carries_run_identity_and_events() -> None:
    client = dev_client()
    seen: dict[str, Any] = {}

    @client.create_function(fn_id="ctx", trigger=stepwise.TriggerEvent(event="user/signup"))
    async def inspect_ctx(ctx: stepwise.Context) -> None:
        seen.update(
            run_id=ctx.run_id,
            attempt=ctx.attempt,
            name=ctx.event.name,
            id=ctx.event.id,
            ts=ctx.event.ts,
            count=len(ctx.events),
        )

    async with App(client, [inspect_ctx]) as app:
        await app.call(inspect_ctx, call_body(attempt=2))
    assert seen == {
        "run_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "attempt": 2,
        "name": "user/signup",
        "id": "01HEVENT0000000000000000000",
        "ts": 1700000000000,
        "count": 1,
    }
