"""TestEngine mocks, one kind of step at a time: step.run, invoke, wait_for_event,
wait_for_signal, step.fetch, step.ai, send_event; and what happens without a mock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import stepwise
from stepwise import NonRetriableError, StepError, ai
from stepwise.protocol import Opcode
from stepwise.testing import TIMEOUT, Arrival, StepRequest, TestEngine, UnmockedStepError

client = stepwise.Stepwise("mocks", is_production=False)
START = datetime(2030, 1, 1, tzinfo=UTC)


# ---- step.run ------------------------------------------------------------------------------


def charge_flow(ran: list[str]) -> stepwise.Function:
    @client.create_function(fn_id="charge", trigger=stepwise.TriggerEvent(event="m/charge"))
    async def charge_fn(ctx: stepwise.Context) -> Any:
        def charge(amount: int) -> dict[str, Any]:
            ran.append("charge")
            return {"id": "real"}

        try:
            receipt = await ctx.step.run("charge", charge, 250)
        except StepError as exc:
            return {"failed": exc.message}
        await ctx.step.run("notify", lambda: ran.append("notify"))
        return receipt

    return charge_fn


def test_a_step_mock_value_replaces_the_step_body() -> None:
    ran: list[str] = []
    engine = TestEngine(charge_flow(ran), steps={"charge": {"id": 1}})
    run = engine.execute()
    assert run.result == {"id": 1}
    assert ran == ["notify"]  # the real charge never ran
    spy = engine.steps["charge"]
    assert spy.calls == 1 and spy.call_args is not None
    assert spy.call_args.mocked and spy.call_args.args == (250,)
    assert run.step("charge").mocked


def test_a_step_mock_callable_gets_the_step_arguments() -> None:
    seen: list[int] = []

    async def fake_charge(amount: int) -> dict[str, Any]:
        seen.append(amount)
        return {"id": "fake", "amount": amount}

    run = TestEngine(charge_flow([])).execute(steps={"charge": fake_charge})
    assert run.result == {"id": "fake", "amount": 250}
    assert seen == [250]


def test_a_step_mock_that_raises_fails_the_step_as_in_production() -> None:
    engine = TestEngine(charge_flow([]), retry_interval="1s")
    run = engine.execute(steps={"charge": NonRetriableError("declined")})
    assert run.result == {"failed": "declined"}
    assert engine.steps["charge"].calls == 1

    attempts: list[int] = []

    def flaky(amount: int) -> dict[str, Any]:
        attempts.append(amount)
        if len(attempts) < 3:
            raise ConnectionError("flaky")
        return {"id": "third time"}

    run = engine.execute(steps={"charge": flaky})
    assert run.result == {"id": "third time"}
    assert engine.steps["charge"].calls == 3


def test_execute_mocks_are_added_over_the_engine_mocks() -> None:
    ran: list[str] = []
    engine = TestEngine(charge_flow(ran), steps={"charge": {"id": "engine"}, "notify": None})
    assert engine.execute().result == {"id": "engine"}
    assert engine.execute(steps={"charge": {"id": "call"}}).result == {"id": "call"}
    assert ran == []  # notify mocked by the engine both times


def test_a_mock_that_is_not_json_fails_the_step_as_a_real_output_would() -> None:
    run = TestEngine(charge_flow([])).execute(steps={"charge": {"thing": object()}})
    assert run.result["failed"].startswith("step 'charge' returned a non-JSON value")


# ---- send_event ----------------------------------------------------------------------------


def test_send_event_is_recorded_not_sent() -> None:
    @client.create_function(fn_id="announce", trigger=stepwise.TriggerEvent(event="m/announce"))
    async def announce(ctx: stepwise.Context) -> list[str]:
        return await ctx.step.send_event(
            "tell-everyone",
            [
                stepwise.Event(name="m/shipped", data={"order": 1}),
                {"name": "m/billed", "data": {"order": 1}},
            ],
        )

    engine = TestEngine(announce)
    run = engine.execute()
    assert [(e.name, e.data) for e in run.sent_events] == [
        ("m/shipped", {"order": 1}),
        ("m/billed", {"order": 1}),
    ]
    assert run.result == [e.id for e in run.sent_events]
    spy = engine.steps["tell-everyone"]
    assert spy.calls == 1 and spy.call_args is not None and spy.call_args.tool == "send_event"
    assert run.step("tell-everyone").kind == "send_event"
    # Mocked by step ID like any step: then nothing is recorded.
    mocked = engine.execute(steps={"tell-everyone": {"ids": ["x"]}})
    assert mocked.result == ["x"] and mocked.sent_events == []


# ---- invoke --------------------------------------------------------------------------------


@client.create_function(fn_id="child", trigger=stepwise.TriggerEvent(event="m/child"))
async def child(ctx: stepwise.Context) -> dict[str, Any]:
    doubled = await ctx.step.run("double", lambda: ctx.event.data["n"] * 2)
    await ctx.step.sleep("child-nap", "10m")
    return {"doubled": doubled}


def parent_flow(timeout: str | None = None) -> stepwise.Function:
    @client.create_function(fn_id="parent", trigger=stepwise.TriggerEvent(event="m/parent"))
    async def parent(ctx: stepwise.Context) -> Any:
        try:
            return await ctx.step.invoke(
                "call-child", function=child, data={"n": 21}, timeout=timeout
            )
        except StepError as exc:
            return {"error": exc.name, "message": exc.message}

    return parent


def test_invoke_mocked_by_step_id_or_function_id() -> None:
    engine = TestEngine(parent_flow())
    assert engine.execute(steps={"call-child": {"doubled": 1}}).result == {"doubled": 1}
    assert engine.execute(invokes={"mocks-child": {"doubled": 2}}).result == {"doubled": 2}
    assert engine.execute(invokes={child: {"doubled": 3}}).result == {"doubled": 3}

    requests: list[StepRequest] = []

    def answer(request: StepRequest) -> dict[str, Any]:
        requests.append(request)
        return {"doubled": request.data["n"] * 2}

    assert engine.execute(invokes={child: answer}).result == {"doubled": 42}
    assert requests[0].function_id == "mocks-child" and requests[0].kind == "invoke"
    spy = engine.steps["call-child"]
    assert spy.calls == 1 and spy.call_args is not None
    assert spy.call_args.kwargs == {"function": child, "data": {"n": 21}, "timeout": None}


def test_invoke_mock_errors_and_timeouts_reach_user_code_as_step_errors() -> None:
    engine = TestEngine(parent_flow(timeout="1h"), now=START)
    failed = engine.execute(invokes={child: ValueError("child broke")})
    assert failed.result == {"error": "ValueError", "message": "child broke"}

    timed_out = engine.execute(invokes={child: TIMEOUT})
    assert timed_out.result["error"] == "InngestInvokeTimeoutError"
    assert timed_out.elapsed == timedelta(hours=1)  # the timeout passed, in virtual time
    assert timed_out.step("call-child").timed_out


def test_an_invoked_function_given_to_the_engine_runs_in_process() -> None:
    engine = TestEngine(parent_flow(), functions=[child], now=START)
    run = engine.execute()
    assert run.result == {"doubled": 42}
    record = run.step("call-child")
    assert record.invoked is not None and record.invoked.step_ids == ["double", "child-nap"]
    assert record.invoked.events[0]["name"] == "inngest/function.invoked"
    assert run.elapsed == timedelta(minutes=10)  # the child's nap
    assert [h.kind for h in run.history if h.name == "call-child"] == [
        "InvokeStarted",
        "InvokeEnded",
    ]
    # A child slower than the invoke's timeout: the parent's step times out at the timeout.
    slow = TestEngine(parent_flow(timeout="5m"), functions=[child]).execute()
    assert slow.result["error"] == "InngestInvokeTimeoutError"


def test_an_invoke_without_a_mock_or_function_is_refused() -> None:
    with pytest.raises(UnmockedStepError, match="mocks-child"):
        TestEngine(parent_flow()).execute()


# ---- wait_for_event ---------------------------------------------------------------------------


def approval_flow() -> stepwise.Function:
    @client.create_function(fn_id="approval", trigger=stepwise.TriggerEvent(event="m/request"))
    async def approval(ctx: stepwise.Context) -> Any:
        await ctx.step.run("prepare", lambda: "ready")
        approved = await ctx.step.wait_for_event(
            "wait-approval", event="m/approved", timeout="1d", match="data.request_id"
        )
        if approved is None:
            return "timed out"
        return {"by": approved.data["by"], "event": approved.name}

    return approval


REQUEST = {"name": "m/request", "data": {"request_id": 5}}


def test_wait_for_event_mocked_with_an_event_by_step_id_or_event_name() -> None:
    engine = TestEngine(approval_flow(), now=START)
    by_step = engine.execute(
        REQUEST, steps={"wait-approval": stepwise.Event(name="m/approved", data={"by": "ann"})}
    )
    assert by_step.result == {"by": "ann", "event": "m/approved"}
    assert by_step.elapsed == timedelta(0)
    assert engine.steps["wait-approval"].call_args is not None
    assert engine.steps["wait-approval"].call_args.kwargs["event"] == "m/approved"
    by_name = engine.execute(REQUEST, waits={"m/approved": {"data": {"by": "bob"}}})
    assert by_name.result == {"by": "bob", "event": "m/approved"}
    stored = by_name.step("wait-approval").output
    assert stored["id"] and stored["ts"] and stored["user"] == {}  # as the server delivers it


def test_wait_for_event_mocked_to_time_out() -> None:
    engine = TestEngine(approval_flow(), now=START)
    for answer in (None, TIMEOUT, lambda request: None):
        run = engine.execute(REQUEST, waits={"m/approved": answer})
        assert run.result == "timed out"
        assert run.elapsed == timedelta(days=1)
        assert run.step("wait-approval").timed_out


def test_an_unmocked_wait_times_out_unless_a_matching_event_arrives() -> None:
    engine = TestEngine(approval_flow(), now=START)
    assert engine.execute(REQUEST).result == "timed out"

    approved = {"name": "m/approved", "data": {"request_id": 5, "by": "cy"}}
    run = engine.execute(REQUEST, arrivals=[Arrival(approved, at="3h")])
    assert run.result == {"by": "cy", "event": "m/approved"}
    assert run.elapsed == timedelta(hours=3)

    # The match condition is evaluated as on the server: another request's approval waits on.
    other = {"name": "m/approved", "data": {"request_id": 6, "by": "dee"}}
    assert engine.execute(REQUEST, arrivals=[Arrival(other, at="1h")]).result == "timed out"

    # An event that arrives before the wait started is not seen by it.
    early = engine.execute(REQUEST, arrivals=[Arrival(approved, after_step="prepare")])
    assert early.result == {"by": "cy", "event": "m/approved"}  # the wait had started


def test_a_callable_wait_mock_gets_the_request() -> None:
    requests: list[StepRequest] = []

    def answer(request: StepRequest) -> stepwise.Event:
        requests.append(request)
        return stepwise.Event(name="m/approved", data={"by": "eve"})

    TestEngine(approval_flow()).execute(REQUEST, waits={"m/approved": answer})
    (request,) = requests
    assert request.op is Opcode.WAIT_FOR_EVENT and request.kind == "wait_for_event"
    assert request.opts["timeout"] == "1d"
    assert request.opts["if"] == "event.data.request_id == async.data.request_id"


# ---- wait_for_signal --------------------------------------------------------------------------


def test_wait_for_signal_mocked_by_step_id() -> None:
    @client.create_function(fn_id="signal", trigger=stepwise.TriggerEvent(event="m/signal"))
    async def signal(ctx: stepwise.Context) -> Any:
        return await ctx.step.wait_for_signal("go", signal="launch-1", timeout="1h")

    engine = TestEngine(signal)
    assert engine.execute(steps={"go": {"ok": True}}).result == {
        "signal": "launch-1",
        "data": {"ok": True},
    }
    assert engine.execute(steps={"go": TIMEOUT}).result is None
    assert engine.execute().result is None  # no signal: the wait times out


# ---- step.fetch -----------------------------------------------------------------------------


def fetch_flow() -> stepwise.Function:
    @client.create_function(fn_id="fetch", trigger=stepwise.TriggerEvent(event="m/fetch"))
    async def fetch_fn(ctx: stepwise.Context) -> Any:
        try:
            response = await ctx.step.fetch(
                "get-rate", "https://rates.example/eur", headers={"accept": "application/json"}
            )
        except StepError as exc:
            return {"error": exc.name, "message": exc.message}
        # The drop-in: the same fetch, durably, with the step ID "fetch:GET <url>".
        other = await stepwise.fetch("https://rates.example/usd")
        return {"eur": response.json(), "status": response.status_code, "usd": other.text}

    return fetch_fn


def test_fetch_mocked_with_responses_in_every_form() -> None:
    engine = TestEngine(fetch_flow())
    run = engine.execute(
        fetch={
            "https://rates.example/eur": stepwise.FetchResponse(
                status_code=200, text='{"rate": 1.1}'
            ),
            "https://rates.example/usd": "1.0",
        }
    )
    assert run.result == {"eur": {"rate": 1.1}, "status": 200, "usd": "1.0"}
    assert run.step("get-rate").output["url"] == "https://rates.example/eur"

    run = engine.execute(
        steps={"get-rate": {"status_code": 404, "body": '"missing"'}},
        fetch=lambda request: {"usd": request.url},
    )
    assert run.result == {
        "eur": "missing",
        "status": 404,
        "usd": '{"usd":"https://rates.example/usd"}',
    }
    spy = engine.steps["get-rate"]
    assert spy.calls == 1 and spy.call_args is not None
    assert spy.call_args.args == ("https://rates.example/eur",)
    assert spy.call_args.kwargs == {"headers": {"accept": "application/json"}}
    assert engine.steps["fetch:GET https://rates.example/usd"].calls == 1


def test_a_fetch_that_cannot_be_made_is_retried_then_fails_the_step() -> None:
    engine = TestEngine(fetch_flow(), retry_interval="1s")
    run = engine.execute(fetch=ConnectionError("unreachable"))
    assert run.result == {"error": "GatewayError", "message": "unreachable"}
    assert engine.steps["get-rate"].calls == 5  # every attempt of the default retries

    once = engine.execute(fetch=NonRetriableError("refused"))
    assert once.result == {"error": "GatewayError", "message": "refused"}
    assert engine.steps["get-rate"].calls == 1


def test_a_fetch_without_a_mock_is_refused() -> None:
    with pytest.raises(UnmockedStepError, match="get-rate"):
        TestEngine(fetch_flow()).execute()
    with pytest.raises(UnmockedStepError, match=re.escape("fetch:GET https://rates.example/usd")):
        TestEngine(fetch_flow()).execute(steps={"get-rate": "{}"})


# ---- step.ai ---------------------------------------------------------------------------------


# The key is an argument, so the test needs no environment; nothing reaches the provider.
MODEL = ai.openai("gpt-4o-mini", api_key="sk-test")


def ai_flow() -> stepwise.Function:
    @client.create_function(fn_id="ai", trigger=stepwise.TriggerEvent(event="m/ai"))
    async def ai_fn(ctx: stepwise.Context) -> Any:
        body = {"messages": [{"role": "user", "content": "hi"}]}
        try:
            answer = await ctx.step.ai.infer("summarize", model=MODEL, body=body)
        except StepError as exc:
            return {"error": exc.name, "message": exc.message}
        return answer.text

    return ai_fn


def test_step_ai_requests_are_mocked_by_op() -> None:
    engine = TestEngine(ai_flow(), retry_interval="1s")
    reply = {"choices": [{"message": {"content": "hello"}}]}
    assert engine.execute(ai=reply).result == "hello"
    by_id = {"choices": [{"message": {"content": "by id"}}]}
    assert engine.execute(steps={"summarize": by_id}).result == "by id"

    requests: list[StepRequest] = []
    engine.execute(ai=lambda request: requests.append(request) or reply)
    assert requests[0].op is Opcode.AI_GATEWAY and requests[0].kind == "ai.infer"
    assert requests[0].opts["body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert requests[0].opts["url"] == "https://api.openai.com/v1/chat/completions"
    assert engine.steps["summarize"].calls == 1

    failed = engine.execute(ai=RuntimeError("provider down"))
    assert failed.result == {"error": "AIGatewayError", "message": "provider down"}
    assert engine.steps["summarize"].calls == 5

    with pytest.raises(UnmockedStepError, match="summarize"):
        engine.execute()
