"""ctx.defer, ctx.metadata and ctx.sessions as the serve endpoint answers a call."""

from __future__ import annotations

from typing import Any

import pytest
from sdk_support import App, call_body, dev_client, h, ops

import stepwise
from stepwise.protocol import RUN_COMPLETE_ID


def deferring_app(
    client: stepwise.Stepwise, body: Any
) -> tuple[stepwise.Function, stepwise.Function]:
    @client.create_defer(fn_id="later")
    async def later(ctx: stepwise.Context) -> Any:
        return {"data": ctx.event.data, "parents": [p.run_id for p in ctx.parents]}

    @client.create_function(fn_id="parent", trigger=stepwise.TriggerEvent(event="user/signup"))
    async def parent(ctx: stepwise.Context) -> Any:
        return await body(ctx, later)

    return later, parent


def defer_add(defer_id: str, data: dict[str, Any], **opts: Any) -> dict[str, Any]:
    return {
        "op": "DeferAdd",
        "id": h(defer_id),
        "name": defer_id,
        "displayName": defer_id,
        "opts": {"fn_slug": "demo-later", "input": data, **opts},
        "userland": {"id": defer_id},
        "data": None,
    }


async def test_a_deferred_function_is_triggered_only_by_its_schedule_event() -> None:
    later, _ = deferring_app(dev_client(), None)
    [trigger] = later.get_config("http://app.test/api/inngest")["triggers"]
    assert trigger == {
        "event": "inngest/deferred.schedule",
        "expression": "event.data._inngest.fn_slug == 'demo-later'",
    }


async def test_a_defer_goes_out_with_the_runs_end() -> None:
    async def body(ctx: stepwise.Context, later: stepwise.Function) -> str:
        ctx.defer("notify", function=later, data={"to": "a@b"})
        return "done"

    client = dev_client()
    later, parent = deferring_app(client, body)
    async with App(client, [later, parent]) as app:
        response = await app.call(parent, call_body())
    assert response.status_code == 206
    assert ops(response) == [
        defer_add("notify", {"to": "a@b"}),
        {"op": "RunComplete", "id": RUN_COMPLETE_ID, "data": "done"},
    ]


async def test_a_defer_the_server_has_is_not_sent_again_and_can_be_aborted() -> None:
    async def body(ctx: stepwise.Context, later: stepwise.Function) -> str:
        kept = ctx.defer("kept", function=later, data={})
        gone = ctx.defer("gone", function=later, data={})
        ctx.defer("kept", function=later, data={"again": True})  # a second one: skipped
        await ctx.step.run("a", lambda: 1)
        gone.abort()
        kept.abort()
        return "done"

    client = dev_client()
    later, parent = deferring_app(client, body)
    call = call_body(steps={h("a"): {"data": 1}})
    call["defers"] = {h("kept"): {"abortable": False}, h("gone"): {"abortable": True}}
    async with App(client, [later, parent]) as app:
        response = await app.call(parent, call)
    # "kept" cannot be aborted any more; "gone" can.
    assert ops(response) == [
        {
            "op": "DeferAbort",
            "id": h(f"{h('gone')}:abort"),
            "name": "gone",
            "displayName": "gone",
            "opts": {"target_hashed_id": h("gone"), "fn_slug": "demo-later", "id": "gone"},
            "userland": {"id": "gone"},
            "data": None,
        },
        {"op": "RunComplete", "id": RUN_COMPLETE_ID, "data": "done"},
    ]


async def test_an_abort_in_the_same_call_replaces_the_add() -> None:
    async def body(ctx: stepwise.Context, later: stepwise.Function) -> str:
        ctx.defer("d", function=later, data={}).abort()
        return "done"

    client = dev_client()
    later, parent = deferring_app(client, body)
    async with App(client, [later, parent]) as app:
        response = await app.call(parent, call_body())
    assert [op["op"] for op in ops(response)] == ["DeferAbort", "RunComplete"]


async def test_defers_ride_along_with_a_step_and_with_the_functions_error() -> None:
    async def body(ctx: stepwise.Context, later: stepwise.Function) -> str:
        ctx.defer("d", function=later, data={"n": 1})
        await ctx.step.run("a", lambda: 1)
        raise stepwise.NonRetriableError("no")

    client = dev_client()
    later, parent = deferring_app(client, body)
    async with App(client, [later, parent]) as app:
        first = await app.call(parent, call_body())
        second = await app.call(parent, call_body(steps={h("a"): {"data": 1}}))
    assert [op["op"] for op in ops(first)] == ["StepRun", "DeferAdd"]
    [add, failed] = ops(second)
    assert add == defer_add("d", {"n": 1})
    assert (failed["op"], failed["id"], failed["error"]["message"]) == (
        "StepFailed",
        RUN_COMPLETE_ID,
        "no",
    )
    assert second.headers["x-inngest-no-retry"] == "true"


async def test_a_deferred_run_sees_its_data_without_the_servers_keys_and_its_parents() -> None:
    client = dev_client()
    later, parent = deferring_app(client, None)
    event = {
        "name": "inngest/deferred.schedule",
        "data": {
            "to": "a@b",
            "_inngest": {
                "fn_slug": "demo-later",
                "parent_fn_slug": "demo-parent",
                "parent_run_id": "R1",
            },
        },
        "id": "E1",
        "ts": 1700000000000,
        "user": {},
    }
    async with App(client, [later, parent]) as app:
        response = await app.call(later, call_body(event=event))
    assert response.json() == {"data": {"to": "a@b"}, "parents": ["R1"]}


@pytest.mark.parametrize(
    ("target", "message"),
    [("not-deferred", "not a deferred function"), ("bad-data", "must be a dict")],
)
async def test_misused_defers_fail_the_call(target: str, message: str) -> None:
    async def body(ctx: stepwise.Context, later: stepwise.Function) -> str:
        if target == "not-deferred":
            ctx.defer("d", function=parent_fn, data={})
        ctx.defer("d", function=later, data=[1])  # type: ignore[arg-type]
        return "done"

    client = dev_client()
    later, parent_fn = deferring_app(client, body)
    async with App(client, [later, parent_fn]) as app:
        response = await app.call(parent_fn, call_body())
    assert response.status_code == 500
    assert message in response.json()["message"]


async def test_metadata_inside_a_step_goes_out_on_its_op() -> None:
    client = dev_client()

    @client.create_function(fn_id="m", trigger=stepwise.TriggerEvent(event="user/signup"))
    async def m(ctx: stepwise.Context) -> None:
        def work() -> int:
            ctx.metadata({"ok": True})
            ctx.metadata({"p": 1}, kind="progress", run=True)
            ctx.metadata({"quality": {"value": 1}}, kind="inngest.score")
            return 1

        await ctx.step.run("work", work)

    async with App(client, [m]) as app:
        response = await app.call(m, call_body())
    [op] = ops(response)
    assert op["metadata"] == [
        {"kind": "userland.default", "op": "set", "values": {"ok": True}, "scope": "step"},
        {"kind": "userland.progress", "op": "set", "values": {"p": 1}, "scope": "run"},
        {
            "kind": "inngest.score",
            "op": "set",
            "values": {"quality": {"value": 1}},
            "scope": "step",
        },
    ]


async def test_metadata_outside_a_step_body_is_a_mistake() -> None:
    client = dev_client()

    @client.create_function(fn_id="m", trigger=stepwise.TriggerEvent(event="user/signup"))
    async def m(ctx: stepwise.Context) -> None:
        ctx.metadata({"ok": True})

    async with App(client, [m]) as app:
        response = await app.call(m, call_body())
    assert response.status_code == 500
    assert "inside a step.run body" in response.json()["message"]


def sessions_event(**sessions: str) -> dict[str, Any]:
    return {
        "name": "user/signup",
        "data": {},
        "id": "E1",
        "ts": 1700000000000,
        "user": {},
        "meta": {"sessions": sessions},
    }


@pytest.mark.parametrize("propagation", [True, False])
async def test_a_runs_sessions_go_on_to_what_it_invokes_and_defers(propagation: bool) -> None:
    client = dev_client(session_propagation=propagation)
    seen: list[dict[str, str]] = []

    async def body(ctx: stepwise.Context, later: stepwise.Function) -> Any:
        seen.append(ctx.sessions)
        ctx.defer("d", function=later, data={}, meta={"sessions": {"extra": "1"}})
        return await ctx.step.invoke("inv", function="demo-other", data={"x": 1})

    later, parent = deferring_app(client, body)
    async with App(client, [later, parent]) as app:
        response = await app.call(parent, call_body(event=sessions_event(org="acme")))
    [invoke, add] = ops(response)
    inherited = {"propagated_sessions": {"org": "acme"}} if propagation else {}
    assert seen == [{"org": "acme"} if propagation else {}]
    assert invoke["opts"]["payload"] == {
        "data": {"x": 1},
        **({"meta": inherited} if inherited else {}),
    }
    assert add["opts"]["meta"] == {"sessions": {"extra": "1"}, **inherited}
