"""Parallel steps: discovery of every step started together, targeting, replay, race."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

from sdk_support import App, call_body, dev_client, h, ops

import stepwise
from stepwise.protocol import loads


def planned(user_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "op": "StepPlanned",
        "id": h(user_id),
        "name": user_id,
        "displayName": user_id,
        "userland": {"id": user_id, "index": 0},
        **extra,
    }


def gather_three(client: stepwise.Stepwise, calls: list[str]) -> stepwise.Function:
    @client.create_function(fn_id="fan", trigger=stepwise.TriggerEvent(event="x"))
    async def fan(ctx: stepwise.Context) -> dict[str, Any]:
        def work(name: str) -> str:
            calls.append(name)
            return name.upper()

        results = await asyncio.gather(
            ctx.step.run("a", work, "a"),
            ctx.step.run("b", work, "b"),
            ctx.step.run("c", work, "c"),
        )
        after = await ctx.step.run("after", work, "after")
        return {"results": results, "after": after}

    return fan


async def test_gather_reports_every_new_step_in_one_response() -> None:
    calls: list[str] = []
    client = dev_client()
    fn = gather_three(client, calls)
    async with App(client, [fn]) as app:
        response = await app.call(fn, call_body())
    assert ops(response) == [planned("a"), planned("b"), planned("c")]
    # Several new steps: none of them is run inline.
    assert calls == []


async def test_gather_with_one_new_step_runs_it_immediately() -> None:
    calls: list[str] = []
    client = dev_client()
    fn = gather_three(client, calls)
    memos = {h("a"): {"data": "A"}, h("c"): {"data": "C"}}
    async with App(client, [fn]) as app:
        response = await app.call(fn, call_body(steps=memos))
    assert [(op["op"], op["id"], op["data"]) for op in ops(response)] == [("StepRun", h("b"), "B")]
    assert calls == ["b"]


async def test_gather_after_a_parallel_response_plans_even_a_single_step() -> None:
    calls: list[str] = []
    client = dev_client()
    fn = gather_three(client, calls)
    memos = {h("a"): {"data": "A"}, h("c"): {"data": "C"}}
    async with App(client, [fn]) as app:
        response = await app.call(fn, call_body(steps=memos, disable_immediate_execution=True))
    assert ops(response) == [planned("b")]
    assert calls == []


async def test_targeted_call_inside_a_gather_runs_only_its_target() -> None:
    calls: list[str] = []
    client = dev_client()
    fn = gather_three(client, calls)
    async with App(client, [fn]) as app:
        response = await app.call(fn, call_body(disable_immediate_execution=True), step_id=h("b"))
        missing = await app.call(fn, call_body(), step_id=h("after"))
    assert [(op["op"], op["id"], op["data"]) for op in ops(response)] == [("StepRun", h("b"), "B")]
    assert calls == ["b"]
    # "after" is only reached once a, b and c are memoized.
    assert missing.status_code == 500
    assert loads(missing.content)["code"] == "step_not_found"


async def test_targeted_failure_inside_a_gather_is_reported() -> None:
    client = dev_client()

    @client.create_function(fn_id="flaky-fan", trigger=stepwise.TriggerEvent(event="x"))
    async def flaky_fan(ctx: stepwise.Context) -> list[Any]:
        def boom() -> None:
            raise ValueError("nope")

        return list(await asyncio.gather(ctx.step.run("ok", lambda: 1), ctx.step.run("bad", boom)))

    async with App(client, [flaky_fan]) as app:
        early = ops(await app.call(flaky_fan, call_body(attempt=0), step_id=h("bad")))
        final = ops(await app.call(flaky_fan, call_body(attempt=4), step_id=h("bad")))
    assert [(op["op"], op["id"]) for op in early] == [("StepError", h("bad"))]
    assert early[0]["error"]["message"] == "nope"
    assert [op["op"] for op in final] == ["StepFailed"]


async def test_replay_returns_gathered_results_in_call_order() -> None:
    calls: list[str] = []
    client = dev_client()
    fn = gather_three(client, calls)
    # Completion order c, a, b must not change the order gather returns.
    memos = {h("c"): {"data": "C"}, h("a"): {"data": "A"}, h("b"): {"data": "B"}}
    async with App(client, [fn]) as app:
        next_step = ops(await app.call(fn, call_body(steps=memos)))
        done = await app.call(fn, call_body(steps={**memos, h("after"): {"data": "AFTER"}}))
    assert [(op["op"], op["id"]) for op in next_step] == [("StepRun", h("after"))]
    assert calls == ["after"]
    assert loads(done.content) == {"results": ["A", "B", "C"], "after": "AFTER"}


async def test_gather_of_mixed_ops_reports_each_as_itself() -> None:
    client = dev_client()

    @client.create_function(fn_id="mixed", trigger=stepwise.TriggerEvent(event="x"))
    async def mixed(ctx: stepwise.Context) -> None:
        await asyncio.gather(
            ctx.step.run("work", lambda: 1),
            ctx.step.sleep("nap", 60),
            ctx.step.wait_for_event("approval", event="app/approved", timeout="1h"),
        )

    async with App(client, [mixed]) as app:
        found = ops(await app.call(mixed, call_body()))
    assert [(op["op"], op["id"]) for op in found] == [
        ("StepPlanned", h("work")),
        ("Sleep", h("nap")),
        ("WaitForEvent", h("approval")),
    ]


async def test_nested_gathers_and_steps_after_memos_are_found_together() -> None:
    client = dev_client()

    @client.create_function(fn_id="nested", trigger=stepwise.TriggerEvent(event="x"))
    async def nested(ctx: stepwise.Context) -> None:
        async def chain(name: str) -> Any:
            first = await ctx.step.run(f"{name}-1", lambda: 1)
            await asyncio.sleep(0)
            return await ctx.step.run(f"{name}-2", lambda: first + 1)

        async def pair() -> Any:
            return await asyncio.gather(chain("x"), chain("y"))

        await asyncio.gather(pair(), chain("z"))

    memos = {h("x-1"): {"data": 1}, h("y-1"): {"data": 1}, h("z-1"): {"data": 1}}
    async with App(client, [nested]) as app:
        found = ops(await app.call(nested, call_body(steps=memos)))
    assert sorted(op["id"] for op in found) == sorted([h("x-2"), h("y-2"), h("z-2")])
    assert {op["op"] for op in found} == {"StepPlanned"}


async def test_parallel_wait_returns_every_result() -> None:
    client = dev_client()

    @client.create_function(fn_id="par", trigger=stepwise.TriggerEvent(event="x"))
    async def par(ctx: stepwise.Context) -> list[int]:
        return await ctx.step.parallel(
            [lambda: ctx.step.run("a", lambda: 1), lambda: ctx.step.run("b", lambda: 2)]
        )

    async with App(client, [par]) as app:
        found = ops(await app.call(par, call_body()))
        done = await app.call(par, call_body(steps={h("b"): {"data": 2}, h("a"): {"data": 1}}))
    assert found == [planned("a"), planned("b")]
    assert loads(done.content) == [1, 2]


def racer(client: stepwise.Stepwise, after: list[str]) -> stepwise.Function:
    @client.create_function(fn_id="racer", trigger=stepwise.TriggerEvent(event="x"))
    async def race(ctx: stepwise.Context) -> Any:
        winner = await ctx.step.parallel(
            [
                lambda: ctx.step.run("slow", lambda: "slow"),
                lambda: ctx.step.run("fast", lambda: "fast"),
                lambda: ctx.step.wait_for_event("human", event="app/human", timeout="1d"),
            ],
            mode="race",
        )
        after.append("continued")
        return winner if not isinstance(winner, stepwise.Event) else winner.name

    return race


async def test_race_plans_every_branch_with_race_mode() -> None:
    after: list[str] = []
    client = dev_client()
    fn = racer(client, after)
    async with App(client, [fn]) as app:
        found = ops(await app.call(fn, call_body()))
    race = {"parallelMode": "race"}
    assert [(op["op"], op["id"], op.get("opts")) for op in found] == [
        ("StepPlanned", h("slow"), race),
        ("StepPlanned", h("fast"), race),
        ("WaitForEvent", h("human"), {"timeout": "1d", "parallelMode": "race"}),
    ]
    assert after == []


async def test_race_returns_the_earliest_completed_step_by_stack_order() -> None:
    after: list[str] = []
    client = dev_client()
    fn = racer(client, after)
    both = {h("slow"): {"data": "slow"}, h("fast"): {"data": "fast"}}
    async with App(client, [fn]) as app:
        one = await app.call(fn, call_body(steps={h("fast"): {"data": "fast"}}))
        # Both memoized: the stack, not the branch order, decides.
        fast_first = await app.call(fn, call_body(steps=both, stack=[h("fast"), h("slow")]))
        slow_first = await app.call(fn, call_body(steps=both, stack=[h("slow"), h("fast")]))
        event = {"name": "app/human", "data": {}, "id": "E1", "ts": 1}
        human = await app.call(
            fn,
            call_body(steps={**both, h("human"): event}, stack=[h("human"), h("slow"), h("fast")]),
        )
    # The losers' steps are withdrawn: nothing more is reported, the function completes.
    assert one.status_code == 200, one.text
    assert loads(one.content) == "fast"
    assert loads(fast_first.content) == "fast"
    assert loads(slow_first.content) == "slow"
    assert loads(human.content) == "app/human"
    assert after == ["continued"] * 4


async def test_race_winner_error_is_raised() -> None:
    client = dev_client()

    @client.create_function(fn_id="race-err", trigger=stepwise.TriggerEvent(event="x"))
    async def race_err(ctx: stepwise.Context) -> str:
        try:
            await ctx.step.parallel(
                [lambda: ctx.step.run("a", lambda: 1), lambda: ctx.step.run("b", lambda: 2)],
                mode="race",
            )
        except stepwise.StepError as err:
            return f"caught {err.message}"
        return "no error"

    memo = {h("b"): {"error": {"name": "E", "message": "b broke"}}}
    async with App(client, [race_err]) as app:
        response = await app.call(race_err, call_body(steps=memo))
    assert loads(response.content) == "caught b broke"


async def test_targeted_call_inside_a_race() -> None:
    after: list[str] = []
    client = dev_client()
    fn = racer(client, after)
    async with App(client, [fn]) as app:
        found = ops(
            await app.call(fn, call_body(disable_immediate_execution=True), step_id=h("fast"))
        )
    assert [(op["op"], op["id"], op["data"]) for op in found] == [("StepRun", h("fast"), "fast")]
    assert after == []


def sync_fan(client: stepwise.Stepwise, calls: list[str], mode: str = "wait") -> stepwise.Function:
    @client.create_function(fn_id=f"sync-fan-{mode}", trigger=stepwise.TriggerEvent(event="x"))
    def fan(ctx: stepwise.SyncContext) -> Any:
        def work(name: str) -> str:
            calls.append(name)
            return name.upper()

        if mode == "race":
            return ctx.step.parallel(
                [lambda: ctx.step.run("a", work, "a"), lambda: ctx.step.run("b", work, "b")],
                mode="race",
            )
        results = ctx.step.parallel(
            [
                lambda: ctx.step.run("a", work, "a"),
                lambda: ctx.step.run("b", work, "b"),
                lambda: ctx.step.run("c", work, "c"),
            ]
        )
        ctx.step.sleep("nap", 60)
        return results

    return fan


async def test_sync_parallel_reports_every_branch() -> None:
    calls: list[str] = []
    client = dev_client()
    fn = sync_fan(client, calls)
    async with App(client, [fn]) as app:
        found = ops(await app.call(fn, call_body()))
        one_left = ops(
            await app.call(fn, call_body(steps={h("a"): {"data": "A"}, h("c"): {"data": "C"}}))
        )
        memos = {h("a"): {"data": "A"}, h("b"): {"data": "B"}, h("c"): {"data": "C"}}
        sleeping = ops(await app.call(fn, call_body(steps=memos)))
        done = await app.call(fn, call_body(steps={**memos, h("nap"): None}))
    assert found == [planned("a"), planned("b"), planned("c")]
    assert [(op["op"], op["id"], op["data"]) for op in one_left] == [("StepRun", h("b"), "B")]
    assert calls == ["b"]
    assert [op["op"] for op in sleeping] == ["Sleep"]
    assert loads(done.content) == ["A", "B", "C"]


async def test_sync_parallel_targeted_and_race() -> None:
    calls: list[str] = []
    client = dev_client()
    fan = sync_fan(client, calls)
    race = sync_fan(client, calls, mode="race")
    async with App(client, [fan, race]) as app:
        target = ops(
            await app.call(fan, call_body(disable_immediate_execution=True), step_id=h("c"))
        )
        race_found = ops(await app.call(race, call_body()))
        both = {h("a"): {"data": "A"}, h("b"): {"data": "B"}}
        won = await app.call(race, call_body(steps=both, stack=[h("b"), h("a")]))
        one = await app.call(race, call_body(steps={h("a"): {"data": "A"}}))
    assert [(op["op"], op["id"]) for op in target] == [("StepRun", h("c"))]
    assert calls == ["c"]
    assert [(op["id"], op["opts"]) for op in race_found] == [
        (h("a"), {"parallelMode": "race"}),
        (h("b"), {"parallelMode": "race"}),
    ]
    assert loads(won.content) == "B"
    assert loads(one.content) == "A"


async def test_parallel_validates_its_arguments() -> None:
    client = dev_client()

    @client.create_function(fn_id="bad-par", trigger=stepwise.TriggerEvent(event="x"))
    async def bad_par(ctx: stepwise.Context) -> None:
        await ctx.step.parallel([], mode="wait")

    @client.create_function(fn_id="bad-mode", trigger=stepwise.TriggerEvent(event="x"))
    async def bad_mode(ctx: stepwise.Context) -> None:
        await ctx.step.parallel([lambda: ctx.step.run("a", lambda: 1)], mode="first")  # type: ignore[call-overload]

    async with App(client, [bad_par, bad_mode]) as app:
        empty = await app.call(bad_par, call_body())
        mode = await app.call(bad_mode, call_body())
    assert empty.status_code == mode.status_code == 500
    assert "at least one branch" in loads(empty.content)["message"]
    assert "parallel mode" in loads(mode.content)["message"]


async def test_a_step_run_immediately_sees_the_handlers_context_variables() -> None:
    client = dev_client()
    request_id: ContextVar[str] = ContextVar("request_id", default="unset")

    @client.create_function(fn_id="ctxvar", trigger=stepwise.TriggerEvent(event="x"))
    async def ctxvar(ctx: stepwise.Context) -> None:
        request_id.set("from-handler")

        async def read_async() -> str:
            return request_id.get()

        await ctx.step.run("async-body", read_async)
        await ctx.step.run("sync-body", request_id.get)

    async with App(client, [ctxvar]) as app:
        first = ops(await app.call(ctxvar, call_body()))
        second = ops(await app.call(ctxvar, call_body(steps={h("async-body"): {"data": "x"}})))
    assert first[0]["data"] == "from-handler"
    assert second[0]["data"] == "from-handler"


async def test_a_step_inside_a_step_body_fails_that_step() -> None:
    client = dev_client()

    @client.create_function(fn_id="nested-step", trigger=stepwise.TriggerEvent(event="x"))
    async def nested_step(ctx: stepwise.Context) -> None:
        async def outer() -> int:
            return await ctx.step.run("inner", lambda: 1)

        await ctx.step.run("outer", outer)

    async with App(client, [nested_step]) as app:
        found = ops(await app.call(nested_step, call_body()))
    assert [(op["op"], op["id"]) for op in found] == [("StepFailed", h("outer"))]
    assert "inside a step.run body" in found[0]["error"]["message"]
