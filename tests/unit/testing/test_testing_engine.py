"""TestEngine: runs, steps in order, run state, retries as the server does them, virtual time,
timeouts, cancel_on, execute_step and spies."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import stepwise
from stepwise import NonRetriableError, RetryAfterError, StepError
from stepwise.protocol import hash_step_id
from stepwise.testing import (
    Arrival,
    RunCancelledError,
    StepNotReachedError,
    TestEngine,
)

client = stepwise.Stepwise("shop", is_production=False)
START = datetime(2030, 1, 1, tzinfo=UTC)


def order_flow(calls: list[str]) -> stepwise.Function:
    @client.create_function(fn_id="order", trigger=stepwise.TriggerEvent(event="shop/order"))
    async def order(ctx: stepwise.Context) -> dict[str, Any]:
        def reserve(items: int) -> dict[str, int]:
            calls.append("reserve")
            return {"reserved": items}

        async def charge(amount: int, *, currency: str) -> dict[str, Any]:
            calls.append("charge")
            return {"charged": amount, "currency": currency}

        reservation = await ctx.step.run("reserve", reserve, ctx.event.data["items"])
        payment = await ctx.step.run("charge", charge, 100, currency="EUR")
        await ctx.step.run("send-email", lambda: calls.append("email") or "sent")
        return {"reservation": reservation, "payment": payment}

    return order


def test_execute_runs_the_steps_in_order_and_returns_the_result() -> None:
    calls: list[str] = []
    engine = TestEngine(order_flow(calls), now=START)
    run = engine.execute({"name": "shop/order", "data": {"items": 2}})

    assert run.status == "Completed"
    assert run.error is None
    assert run.result == {
        "reservation": {"reserved": 2},
        "payment": {"charged": 100, "currency": "EUR"},
    }
    assert run.step_ids == ["reserve", "charge", "send-email"]
    assert [s.output for s in run.steps] == [
        {"reserved": 2},
        {"charged": 100, "currency": "EUR"},
        "sent",
    ]
    assert calls == ["reserve", "charge", "email"]  # each body once, replays use memos
    # The run's state, as the server holds it: memos by hashed ID, in completion order.
    assert run.state.stack == [hash_step_id(i) for i in ("reserve", "charge", "send-email")]
    assert run.state.memos[hash_step_id("reserve")] == {"data": {"reserved": 2}}
    assert run.state.requests == 4  # three steps run inline, then the call that returns
    assert run.state.output == run.result
    assert [h.kind for h in run.history] == [
        "RunStarted",
        "StepCompleted",
        "StepCompleted",
        "StepCompleted",
        "RunCompleted",
    ]
    assert run.events[0]["name"] == "shop/order" and run.events[0]["id"]
    assert run.created_at == START


def test_spies_record_each_step_call_with_its_arguments() -> None:
    engine = TestEngine(order_flow([]))
    engine.execute({"name": "shop/order", "data": {"items": 3}})

    assert engine.steps["send-email"].calls == 1
    assert engine.steps["charge"].called
    engine.steps["charge"].assert_called_once_with(100, currency="EUR")
    reserve = engine.steps["reserve"].call_args
    assert reserve is not None and reserve.args == (3,) and reserve.fn is not None
    assert reserve.tool == "run" and reserve.output == {"reserved": 3} and not reserve.mocked
    assert engine.steps["never-called"].calls == 0
    assert "never-called" not in engine.steps
    assert set(engine.steps) == {"reserve", "charge", "send-email"}


def test_def_handlers_run_too() -> None:
    @client.create_function(fn_id="sync", trigger=stepwise.TriggerEvent(event="shop/sync"))
    def sync_flow(ctx: stepwise.SyncContext) -> int:
        a = ctx.step.run("a", lambda: 1)
        ctx.step.sleep("nap", "1h")
        b, c = ctx.step.parallel(
            [lambda: ctx.step.run("b", lambda x: x + 1, a), lambda: ctx.step.run("c", lambda: 3)]
        )
        return a + b + c

    engine = TestEngine(sync_flow)
    run = engine.execute()
    assert run.result == 6
    assert run.step_ids[:2] == ["a", "nap"] and sorted(run.step_ids[2:]) == ["b", "c"]
    assert run.sleeps[0].duration == timedelta(hours=1)
    engine.steps["b"].assert_called_once_with(1)


def test_without_an_event_the_first_trigger_names_one() -> None:
    @client.create_function(fn_id="named", trigger=stepwise.TriggerEvent(event="shop/named"))
    async def named(ctx: stepwise.Context) -> str:
        return ctx.event.name

    @client.create_function(fn_id="cron", trigger=stepwise.TriggerCron(cron="0 * * * *"))
    async def cron(ctx: stepwise.Context) -> str:
        return ctx.event.name

    assert TestEngine(named).execute().result == "shop/named"
    assert TestEngine(cron).execute().result == "inngest/scheduled.timer"


def test_a_batch_of_events_reaches_the_handler() -> None:
    @client.create_function(fn_id="batch", trigger=stepwise.TriggerEvent(event="shop/item"))
    async def batch(ctx: stepwise.Context) -> list[int]:
        return [e.data["n"] for e in ctx.events]

    events = [stepwise.Event(name="shop/item", data={"n": n}) for n in range(3)]
    run = TestEngine(batch).execute(events=events)
    assert run.result == [0, 1, 2]
    assert len(run.events) == 3


def test_results_come_back_through_json_as_from_a_server() -> None:
    @client.create_function(fn_id="json", trigger=stepwise.TriggerEvent(event="shop/json"))
    async def as_json(ctx: stepwise.Context) -> Any:
        pair = await ctx.step.run("pair", lambda: (1, 2))
        box = await ctx.step.run("box", lambda: {"items": []})
        box["items"].append("changed by user code")
        await ctx.step.run("next", lambda: None)
        return {"pair": pair, "box": box}

    run = TestEngine(as_json).execute()
    assert run.result == {"pair": [1, 2], "box": {"items": ["changed by user code"]}}
    assert run.step("box").output == {"items": []}  # the stored result did not change


# ---- retries ------------------------------------------------------------------------------


def flaky_flow(failures: int, error: BaseException, retries: int = 3) -> stepwise.Function:
    attempts: list[int] = []

    @client.create_function(
        fn_id=f"flaky-{failures}",
        trigger=stepwise.TriggerEvent(event="shop/flaky"),
        retries=retries,
    )
    async def flaky(ctx: stepwise.Context) -> Any:
        def call_provider() -> str:
            attempts.append(ctx.attempt)
            if len(attempts) <= failures:
                raise error
            return f"ok on attempt {ctx.attempt}"

        try:
            return await ctx.step.run("call-provider", call_provider)
        except StepError as exc:
            return {"gave_up": exc.message, "name": exc.name}

    flaky.attempts = attempts  # type: ignore[attr-defined]
    return flaky


def test_a_failing_step_is_retried_with_attempt_advancing() -> None:
    fn = flaky_flow(2, TimeoutError("provider timed out"))
    engine = TestEngine(fn, retry_interval="10s", now=START)
    run = engine.execute()

    assert run.result == "ok on attempt 2"
    assert fn.attempts == [0, 1, 2]  # type: ignore[attr-defined]
    spy = engine.steps["call-provider"]
    assert spy.calls == 3
    assert [c.attempt for c in spy.call_args_list] == [0, 1, 2]
    assert isinstance(spy.call_args_list[0].error, TimeoutError)
    assert spy.call_args_list[2].output == "ok on attempt 2"
    assert run.step("call-provider").attempts == 3
    errored = [h for h in run.history if h.kind == "StepErrored"]
    assert [h.attempt for h in errored] == [0, 1]
    assert errored[0].data["error"]["message"] == "provider timed out"
    # Virtual time: the two retries waited 10 s each.
    assert run.elapsed == timedelta(seconds=20)


def test_retries_end_with_the_retry_policy_and_the_step_fails_for_good() -> None:
    fn = flaky_flow(99, ValueError("always"), retries=2)
    engine = TestEngine(fn, retry_interval="1s")
    run = engine.execute()

    assert engine.steps["call-provider"].calls == 3  # 1 + 2 retries
    assert run.result == {"gave_up": "always", "name": "ValueError"}
    record = run.step("call-provider")
    assert record.failed and record.error is not None and record.error["name"] == "ValueError"
    assert [h.kind for h in run.history].count("StepFailed") == 1


def test_the_server_backoff_table_applies_without_a_retry_interval() -> None:
    fn = flaky_flow(1, TimeoutError("slow"))
    run = TestEngine(fn, now=START).execute()
    assert run.result == "ok on attempt 1"
    # The first retry waits 15 s plus up to 30 s of jitter, as on the server.
    assert timedelta(seconds=15) <= run.elapsed <= timedelta(seconds=45)


def test_non_retriable_errors_are_not_retried() -> None:
    fn = flaky_flow(99, NonRetriableError("card declined"))
    engine = TestEngine(fn)
    run = engine.execute()
    assert engine.steps["call-provider"].calls == 1
    assert run.result == {"gave_up": "card declined", "name": "NonRetriableError"}


def test_retry_after_errors_set_when_the_next_attempt_runs() -> None:
    fn = flaky_flow(1, RetryAfterError("rate limited", timedelta(minutes=5)))
    run = TestEngine(fn, retry_interval="1s", now=START).execute()
    assert run.result == "ok on attempt 1"
    assert timedelta(minutes=4, seconds=59) <= run.elapsed <= timedelta(minutes=5)
    errored = next(h for h in run.history if h.kind == "StepErrored")
    assert errored.data["retry_at"] == int((START + run.elapsed).timestamp() * 1000)


def test_a_function_error_is_retried_then_fails_the_run() -> None:
    seen: list[int] = []

    @client.create_function(
        fn_id="broken", trigger=stepwise.TriggerEvent(event="shop/broken"), retries=2
    )
    async def broken(ctx: stepwise.Context) -> None:
        seen.append(ctx.attempt)
        raise KeyError("missing")

    run = TestEngine(broken, retry_interval="1s").execute()
    assert run.status == "Failed"
    assert isinstance(run.error, KeyError)
    assert seen == [0, 1, 2]
    assert [h.kind for h in run.history] == [
        "RunStarted",
        "AttemptFailed",
        "AttemptFailed",
        "RunFailed",
    ]
    assert run.state.output["name"] == "KeyError"


def test_an_uncaught_step_failure_fails_the_run_without_more_attempts() -> None:
    @client.create_function(
        fn_id="uncaught", trigger=stepwise.TriggerEvent(event="shop/uncaught"), retries=1
    )
    async def uncaught(ctx: stepwise.Context) -> None:
        await ctx.step.run("doomed", _raise_non_retriable)

    run = TestEngine(uncaught).execute()
    assert run.status == "Failed"
    assert isinstance(run.error, StepError) and run.error.message == "no"
    assert [h.kind for h in run.history][-2:] == ["StepFailed", "RunFailed"]


def _raise_non_retriable() -> None:
    raise NonRetriableError("no")


# ---- virtual time, timeouts, cancel_on ------------------------------------------------------


def test_sleeps_are_skipped_and_recorded_with_their_durations() -> None:
    @client.create_function(fn_id="sleepy", trigger=stepwise.TriggerEvent(event="shop/sleepy"))
    async def sleepy(ctx: stepwise.Context) -> str:
        await ctx.step.sleep("a-month", "720h")
        await ctx.step.sleep("a-minute", timedelta(minutes=1))
        await ctx.step.sleep_until("new-year", datetime(2031, 1, 1, tzinfo=UTC))
        return "rested"

    engine = TestEngine(sleepy, now=START)
    run = engine.execute()
    assert run.result == "rested"
    assert [(s.id, s.duration, s.tool) for s in run.sleeps] == [
        ("a-month", timedelta(days=30), "sleep"),
        ("a-minute", timedelta(minutes=1), "sleep"),
        (
            "new-year",
            datetime(2031, 1, 1, tzinfo=UTC) - START - timedelta(days=30, minutes=1),
            "sleep_until",
        ),
    ]
    assert run.sleeps[-1].until == datetime(2031, 1, 1, tzinfo=UTC)
    assert run.elapsed == timedelta(days=365)
    assert engine.steps["a-month"].call_args is not None
    assert engine.steps["a-month"].call_args.args == ("720h",)
    kinds = [h.kind for h in run.history if h.name == "a-month"]
    assert kinds == ["SleepStarted", "SleepEnded"]


def test_a_finish_timeout_cancels_a_run_that_sleeps_past_it() -> None:
    @client.create_function(
        fn_id="slow",
        trigger=stepwise.TriggerEvent(event="shop/slow"),
        timeouts=stepwise.Timeouts(finish="1h"),
    )
    async def slow(ctx: stepwise.Context) -> str:
        await ctx.step.run("before", lambda: 1)
        await ctx.step.sleep("long-nap", "2h")
        await ctx.step.run("after", lambda: 2)
        return "done"

    engine = TestEngine(slow, now=START)
    run = engine.execute()
    assert run.status == "Cancelled"
    assert isinstance(run.error, RunCancelledError)
    assert "did not finish within its 1h timeout" in str(run.error)
    assert run.elapsed == timedelta(hours=1)
    assert run.step_ids == ["before"]
    assert engine.steps["after"].calls == 0


def test_a_start_timeout_cancels_a_run_that_waits_too_long_to_start() -> None:
    @client.create_function(
        fn_id="queued",
        trigger=stepwise.TriggerEvent(event="shop/queued"),
        timeouts=stepwise.Timeouts(start="10m"),
    )
    async def queued(ctx: stepwise.Context) -> str:
        return "started"

    engine = TestEngine(queued)
    late = engine.execute(start_delay="15m")
    assert late.status == "Cancelled" and late.state.requests == 0
    assert "did not start within its 10m timeout" in str(late.error)
    assert engine.execute(start_delay="5m").result == "started"


def cancellable() -> stepwise.Function:
    @client.create_function(
        fn_id="cancellable",
        trigger=stepwise.TriggerEvent(event="shop/order"),
        cancel_on=stepwise.CancelOn(event="shop/order.cancelled", match="data.order_id"),
    )
    async def fn(ctx: stepwise.Context) -> str:
        await ctx.step.run("reserve", lambda: "reserved")
        await ctx.step.sleep("grace-period", "1d")
        await ctx.step.run("ship", lambda: "shipped")
        return "shipped"

    return fn


def test_cancel_on_is_triggered_by_an_event_that_arrives_during_the_run() -> None:
    engine = TestEngine(cancellable(), now=START)
    order = {"name": "shop/order", "data": {"order_id": 7}}
    cancel = {"name": "shop/order.cancelled", "data": {"order_id": 7}}

    run = engine.execute(order, arrivals=[Arrival(cancel, at="2h")])
    assert run.status == "Cancelled"
    assert "cancelled by event shop/order.cancelled" in str(run.error)
    assert run.elapsed == timedelta(hours=2)
    assert run.step_ids == ["reserve"]
    assert engine.steps["ship"].calls == 0

    other = {"name": "shop/order.cancelled", "data": {"order_id": 8}}
    assert engine.execute(order, arrivals=[Arrival(other, at="2h")]).result == "shipped"

    after = engine.execute(order, arrivals=[Arrival(cancel, after_step="reserve")])
    assert after.status == "Cancelled" and after.elapsed == timedelta(0)


# ---- execute_step -------------------------------------------------------------------------


def test_execute_step_runs_until_that_step_and_returns_its_output() -> None:
    calls: list[str] = []
    engine = TestEngine(order_flow(calls))
    step = engine.execute_step("charge", {"name": "shop/order", "data": {"items": 1}})
    assert step.output == {"charged": 100, "currency": "EUR"}
    assert step.error is None
    assert step.run.status == "Running"
    assert step.run.step_ids == ["reserve", "charge"]
    assert calls == ["reserve", "charge"]  # send-email did not run
    assert engine.steps["send-email"].calls == 0


def test_execute_step_raises_when_the_run_never_reaches_the_step() -> None:
    engine = TestEngine(order_flow([]))
    with pytest.raises(StepNotReachedError, match="'nope'"):
        engine.execute_step("nope", {"name": "shop/order", "data": {"items": 1}})


# ---- parallel steps --------------------------------------------------------------------------


def test_parallel_steps_are_planned_run_and_joined_as_on_the_server() -> None:
    @client.create_function(fn_id="fan", trigger=stepwise.TriggerEvent(event="shop/fan"))
    async def fan(ctx: stepwise.Context) -> Any:
        first = await asyncio.gather(ctx.step.run("a", lambda: "A"), ctx.step.run("b", lambda: "B"))
        second = await ctx.step.parallel(
            [lambda: ctx.step.run("c", lambda: "C"), lambda: ctx.step.sleep("d", "1m")]
        )
        tail = await ctx.step.run("tail", lambda: "T")
        return [first, second, tail]

    engine = TestEngine(fan)
    run = engine.execute()
    assert run.result == [["A", "B"], ["C", None], "T"]
    assert sorted(run.step_ids[:2]) == ["a", "b"]
    assert run.step_ids[2:] == ["c", "d", "tail"]
    assert [h.kind for h in run.history].count("StepPlanned") == 3  # a, b, c
    assert all(engine.steps[i].calls == 1 for i in "abcd")
    # After the batch drained, "tail" ran inline again (immediate execution is back).
    tail = next(h for h in run.history if h.name == "tail")
    assert tail.kind == "StepCompleted"


def test_repeated_step_ids_are_told_apart_by_index() -> None:
    @client.create_function(fn_id="loop", trigger=stepwise.TriggerEvent(event="shop/loop"))
    async def loop(ctx: stepwise.Context) -> list[int]:
        return [await ctx.step.run("item", lambda n=n: n * 10) for n in range(3)]

    engine = TestEngine(loop)
    run = engine.execute()
    assert run.result == [0, 10, 20]
    assert [c.index for c in engine.steps["item"].call_args_list] == [0, 1, 2]
    assert run.step("item", 2).output == 20
    assert run.outputs() == {"item": 0}


# ---- sync and async entry points ---------------------------------------------------------------


async def test_execute_async_in_an_async_test() -> None:
    engine = TestEngine(order_flow([]))
    run = await engine.execute_async({"name": "shop/order", "data": {"items": 1}})
    assert run.status == "Completed"
    step = await engine.execute_step_async("reserve", {"name": "shop/order", "data": {"items": 4}})
    assert step.output == {"reserved": 4}


async def test_the_sync_api_says_to_await_the_async_one_inside_an_event_loop() -> None:
    engine = TestEngine(order_flow([]))
    with pytest.raises(RuntimeError, match="execute_async"):
        engine.execute({"name": "shop/order", "data": {"items": 1}})


# ---- the server's limits ------------------------------------------------------------------


def test_the_step_limit_fails_the_run_as_on_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limit is 1000 steps: lowered here so the run stays short.
    monkeypatch.setattr("stepwise.testing._run.MAX_STEPS", 3)

    @client.create_function(fn_id="many", trigger=stepwise.TriggerEvent(event="shop/many"))
    async def many(ctx: stepwise.Context) -> str:
        for n in range(5):
            await ctx.step.run("step", lambda n=n: n)
        return "done"

    run = TestEngine(many).execute()
    assert run.status == "Failed"
    assert run.state.output == {
        "name": "StepLimitExceededError",
        "message": "the run has more than 3 steps",
    }
    assert run.step_ids == ["step", "step", "step"]


def test_a_step_output_over_the_size_limit_fails_the_step() -> None:
    @client.create_function(fn_id="big", trigger=stepwise.TriggerEvent(event="shop/big"))
    async def big(ctx: stepwise.Context) -> str:
        try:
            await ctx.step.run("huge", lambda: "x" * (4 * 1024 * 1024 + 1))
        except StepError as exc:
            return exc.name
        return "stored"

    assert TestEngine(big).execute().result == "OutputTooLargeError"
