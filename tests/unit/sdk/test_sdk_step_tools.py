"""wait_for_event, invoke, fetch (and the stepwise.fetch drop-in), wait_for_signal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sdk_support import App, call_body, dev_client, h, ops

import stepwise
from stepwise.protocol import loads
from stepwise.sdk import gateway

EVENT = {
    "name": "app/approved",
    "data": {"id": 7},
    "id": "01HAPPROVED0000000000000000",
    "ts": 1700000000001,
    "user": {},
}


async def test_wait_for_event_op_and_memos() -> None:
    client = dev_client()
    seen: list[Any] = []

    @client.create_function(fn_id="approve", trigger=stepwise.TriggerEvent(event="x"))
    async def approve(ctx: stepwise.Context) -> str:
        got = await ctx.step.wait_for_event(
            "wait", event="app/approved", timeout=timedelta(hours=2), match="data.id"
        )
        seen.append(got)
        return "timed out" if got is None else f"approved {got.data['id']}"

    async with App(client, [approve]) as app:
        found = ops(await app.call(approve, call_body()))
        matched = await app.call(approve, call_body(steps={h("wait"): EVENT}))
        timed_out = await app.call(approve, call_body(steps={h("wait"): None}))
    assert found == [
        {
            "op": "WaitForEvent",
            "id": h("wait"),
            "name": "app/approved",
            "displayName": "wait",
            "opts": {"timeout": "2h", "if": "event.data.id == async.data.id"},
            "userland": {"id": "wait", "index": 0},
        }
    ]
    assert loads(matched.content) == "approved 7"
    assert loads(timed_out.content) == "timed out"
    event = seen[0]
    assert isinstance(event, stepwise.Event)
    assert (event.name, event.id, event.ts) == ("app/approved", EVENT["id"], EVENT["ts"])
    assert seen[1] is None


async def test_wait_for_event_if_and_sync_veneer() -> None:
    client = dev_client()

    @client.create_function(fn_id="sync-wait", trigger=stepwise.TriggerEvent(event="x"))
    def sync_wait(ctx: stepwise.SyncContext) -> str | None:
        got = ctx.step.wait_for_event(
            "wait", event="app/approved", timeout=90, if_="async.data.id > 3"
        )
        return None if got is None else got.name

    async with App(client, [sync_wait]) as app:
        found = ops(await app.call(sync_wait, call_body()))
        done = await app.call(sync_wait, call_body(steps={h("wait"): EVENT}))
    assert found[0]["opts"] == {"timeout": "90s", "if": "async.data.id > 3"}
    assert found[0]["op"] == "WaitForEvent"
    assert loads(done.content) == "app/approved"


def invoker(client: stepwise.Stepwise, target: stepwise.Function | str) -> stepwise.Function:
    @client.create_function(fn_id="parent", trigger=stepwise.TriggerEvent(event="x"))
    async def parent(ctx: stepwise.Context) -> Any:
        try:
            return await ctx.step.invoke(
                "call-child", function=target, data={"n": 2}, timeout="10m"
            )
        except stepwise.StepError as err:
            return {"error": err.name, "message": err.message}

    return parent


async def test_invoke_op_and_memos() -> None:
    client = dev_client()

    @client.create_function(fn_id="child", trigger=stepwise.TriggerEvent(event="never"))
    async def child(ctx: stepwise.Context) -> int:
        return 4

    parent = invoker(client, child)
    timeout_error = {
        "name": "InngestInvokeTimeoutError",
        "message": "Timed out waiting for invoked function to complete",
        "error": "InngestInvokeTimeoutError: Timed out waiting for invoked function to complete",
    }
    async with App(client, [parent, child]) as app:
        found = ops(await app.call(parent, call_body()))
        ok = await app.call(parent, call_body(steps={h("call-child"): {"data": 4}}))
        failed = await app.call(
            parent, call_body(steps={h("call-child"): {"error": timeout_error}})
        )
    assert found == [
        {
            "op": "InvokeFunction",
            "id": h("call-child"),
            "displayName": "call-child",
            "opts": {"function_id": "demo-child", "payload": {"data": {"n": 2}}, "timeout": "10m"},
            "userland": {"id": "call-child", "index": 0},
        }
    ]
    assert loads(ok.content) == 4
    assert loads(failed.content) == {
        "error": "InngestInvokeTimeoutError",
        "message": "Timed out waiting for invoked function to complete",
    }


async def test_invoke_by_composite_id_without_data_or_timeout() -> None:
    client = dev_client()

    @client.create_function(fn_id="plain", trigger=stepwise.TriggerEvent(event="x"))
    def plain(ctx: stepwise.SyncContext) -> Any:
        return ctx.step.invoke("other", function="other-app-fn")

    async with App(client, [plain]) as app:
        found = ops(await app.call(plain, call_body()))
        done = await app.call(plain, call_body(steps={h("other"): {"data": None}}))
    assert found[0]["opts"] == {"function_id": "other-app-fn", "payload": {"data": {}}}
    assert done.status_code == 200
    assert loads(done.content) is None


async def test_fetch_step_op_and_memos() -> None:
    client = dev_client()

    @client.create_function(fn_id="fetcher", trigger=stepwise.TriggerEvent(event="x"))
    async def fetcher(ctx: stepwise.Context) -> Any:
        try:
            response = await ctx.step.fetch(
                "get-user",
                "https://api.example.com/users/1",
                method="post",
                headers={"authorization": "Bearer t"},
                body=b'{"q": 1}',
            )
        except stepwise.StepError as err:
            return {"failed": err.name}
        return {"status": response.status_code, "json": response.json(), "ok": response.ok}

    memo = {
        "data": {
            "url": "https://api.example.com/users/1",
            "headers": {"Content-Type": "application/json", "Set-Cookie": "a=1,b=2"},
            "body": '{"name": "Ann"}',
            "status_code": 404,
        }
    }
    gateway_error = {"error": {"name": "GatewayError", "message": "connection refused"}}
    async with App(client, [fetcher]) as app:
        found = ops(await app.call(fetcher, call_body()))
        done = await app.call(fetcher, call_body(steps={h("get-user"): memo}))
        failed = await app.call(fetcher, call_body(steps={h("get-user"): gateway_error}))
    assert found == [
        {
            "op": "Gateway",
            "id": h("get-user"),
            "displayName": "get-user",
            "opts": {
                "url": "https://api.example.com/users/1",
                "method": "POST",
                "headers": {"authorization": "Bearer t"},
                "body": '{"q": 1}',
            },
            "userland": {"id": "get-user", "index": 0},
        }
    ]
    # Any HTTP status is a result; only a request that could not be made is an error.
    assert loads(done.content) == {"status": 404, "json": {"name": "Ann"}, "ok": False}
    assert loads(failed.content) == {"failed": "GatewayError"}


def test_fetch_response_from_memo() -> None:
    response = stepwise.FetchResponse.from_memo(
        {"url": "u", "headers": {"X-A": "1,2"}, "body": "[1]", "status_code": 200}
    )
    assert response == stepwise.FetchResponse(
        status_code=200, headers={"x-a": "1,2"}, text="[1]", url="u"
    )
    assert response.json() == [1]
    assert response.ok


async def test_fetch_drop_in_is_a_step_inside_a_function() -> None:
    requests: list[httpx.Request] = []

    def remote(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(201, json={"made": "here"}, headers={"x-k": "v"})

    client = dev_client(httpx.MockTransport(remote))

    @client.create_function(fn_id="drop-in", trigger=stepwise.TriggerEvent(event="x"))
    async def drop_in(ctx: stepwise.Context) -> Any:
        durable = await stepwise.fetch("https://api.example.com/a", method="PUT", body="hi")

        async def in_step() -> dict[str, Any]:
            # Inside a step body the drop-in is a plain request.
            inner = await stepwise.fetch("https://api.example.com/b")
            return {"status": inner.status_code, "json": inner.json(), "h": inner.headers["x-k"]}

        plain = await ctx.step.run("plain", in_step)
        return {"durable": durable.text, "plain": plain}

    memo = {
        "data": {
            "url": "https://api.example.com/a",
            "headers": {},
            "body": "ok",
            "status_code": 200,
        }
    }
    step_id = h("fetch:PUT https://api.example.com/a")
    async with App(client, [drop_in]) as app:
        found = ops(await app.call(drop_in, call_body()))
        ran = ops(await app.call(drop_in, call_body(steps={step_id: memo})))
    assert found == [
        {
            "op": "Gateway",
            "id": step_id,
            "displayName": "fetch:PUT https://api.example.com/a",
            "opts": {
                "url": "https://api.example.com/a",
                "method": "PUT",
                "headers": {},
                "body": "hi",
            },
            "userland": {"id": "fetch:PUT https://api.example.com/a", "index": 0},
        }
    ]
    assert ran[0]["op"] == "StepRun"
    assert ran[0]["data"] == {"status": 201, "json": {"made": "here"}, "h": "v"}
    assert [str(r.url) for r in requests] == ["https://api.example.com/b"]


async def test_fetch_drop_in_outside_a_function_is_a_plain_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[httpx.Request] = []

    def remote(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="pong", headers=[("x-m", "1"), ("x-m", "2")])

    monkeypatch.setattr(
        gateway,
        "_new_http_client",
        lambda: httpx.AsyncClient(transport=httpx.MockTransport(remote)),
    )
    response = await stepwise.fetch(
        "https://example.com/ping", method="post", headers={"a": "b"}, body=b"x"
    )
    assert response.status_code == 200
    assert response.text == "pong"
    assert response.headers["x-m"] == "1,2"
    assert response.url == "https://example.com/ping"
    assert seen[0].method == "POST"
    assert seen[0].headers["a"] == "b"
    assert seen[0].content == b"x"


async def test_wait_for_signal_op_and_memos() -> None:
    client = dev_client()

    @client.create_function(fn_id="signalled", trigger=stepwise.TriggerEvent(event="x"))
    async def signalled(ctx: stepwise.Context) -> Any:
        return await ctx.step.wait_for_signal(
            "wait-sig", signal="order-42", timeout="1d", on_conflict="fail"
        )

    @client.create_function(fn_id="sync-signalled", trigger=stepwise.TriggerEvent(event="x"))
    def sync_signalled(ctx: stepwise.SyncContext) -> Any:
        return ctx.step.wait_for_signal("wait-sig", signal="order-42", timeout=3600)

    memo = {"data": {"signal": "order-42", "data": {"paid": True}}}
    async with App(client, [signalled, sync_signalled]) as app:
        found = ops(await app.call(signalled, call_body()))
        sync_found = ops(await app.call(sync_signalled, call_body()))
        resumed = await app.call(signalled, call_body(steps={h("wait-sig"): memo}))
        timed_out = await app.call(sync_signalled, call_body(steps={h("wait-sig"): None}))
    assert found == [
        {
            "op": "WaitForSignal",
            "id": h("wait-sig"),
            "name": "order-42",
            "displayName": "wait-sig",
            "opts": {"signal": "order-42", "timeout": "1d", "conflict": "fail"},
            "userland": {"id": "wait-sig", "index": 0},
        }
    ]
    assert sync_found[0]["opts"] == {"signal": "order-42", "timeout": "1h", "conflict": "replace"}
    assert loads(resumed.content) == {"signal": "order-42", "data": {"paid": True}}
    assert timed_out.status_code == 200
    assert loads(timed_out.content) is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.wait_for_event("w", event="e", timeout="1h", if_="a", match="b"), "not both"),
        (lambda s: s.wait_for_event("w", event="", timeout="1h"), "event name"),
        (lambda s: s.wait_for_event("w", event="e", timeout="367d"), "366 days"),
        (lambda s: s.wait_for_event("w", event="e", timeout="soon"), "invalid duration"),
        (lambda s: s.wait_for_event("w", event="e", timeout=-1), "negative"),
        (lambda s: s.invoke("i", function=""), "composite function ID"),
        (lambda s: s.invoke("i", function="a-b", data=[1]), "must be a dict"),
        (lambda s: s.invoke("i", function="a-b", data={"x": object()}), "not JSON"),
        (lambda s: s.fetch("f", "ftp://x"), "http(s) URL"),
        (lambda s: s.fetch("f", "https://x", body=b"\xff"), "UTF-8"),
        (
            lambda s: s.wait_for_signal("s", signal="x", timeout="1h", on_conflict="merge"),
            "on_conflict",
        ),
        (lambda s: s.wait_for_signal("s", signal="", timeout="1h"), "signal name"),
    ],
)
async def test_step_tool_arguments_are_validated(call: Any, message: str) -> None:
    client = dev_client()

    @client.create_function(fn_id="invalid", trigger=stepwise.TriggerEvent(event="x"))
    async def invalid(ctx: stepwise.Context) -> None:
        await call(ctx.step)

    async with App(client, [invalid]) as app:
        response = await app.call(invalid, call_body())
    assert response.status_code == 500
    body = loads(response.content)
    assert body["name"] == "ConfigError"
    assert message in body["message"]
