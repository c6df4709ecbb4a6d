"""``stepwise.ext.validation``: payloads checked on send and on receipt, typed data."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from sdk_support import App, call_body, dev_client

import stepwise
from stepwise.ext.validation import InvalidEventError, ValidationMiddleware
from stepwise.protocol import loads


class Item(BaseModel):
    sku: str
    quantity: int


class Order(BaseModel):
    customer: str
    items: list[Item]


SCHEMAS = {"shop/order.placed": Order}


def recording_client(sent: list[Any], **kwargs: Any) -> stepwise.Stepwise:
    def api(request: httpx.Request) -> httpx.Response:
        sent.append(loads(request.content))
        return httpx.Response(200, json={"ids": ["E1"], "status": 200})

    return dev_client(httpx.MockTransport(api), event_key="k", **kwargs)


async def test_an_invalid_payload_is_refused_on_send_naming_each_field() -> None:
    sent: list[Any] = []
    client = recording_client(sent, middleware=[ValidationMiddleware(SCHEMAS)])
    bad = {"customer": 7, "items": [{"sku": "a", "quantity": "many"}, {"quantity": 1}]}
    with pytest.raises(InvalidEventError) as caught:
        await client.send({"name": "shop/order.placed", "data": bad})
    assert caught.value.errors == [
        ("data.customer", "Input should be a valid string"),
        (
            "data.items[0].quantity",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        ("data.items[1].sku", "Field required"),
    ]
    assert "event 'shop/order.placed' is invalid: data.customer" in str(caught.value)
    assert sent == []
    # A model instance is sent as its JSON; other event names pass unchanged.
    order = Order(customer="ada", items=[Item(sku="a", quantity=2)])
    await client.send([stepwise.Event(name="shop/order.placed", data=order), {"name": "x/y"}])
    assert sent[0][0]["data"] == {"customer": "ada", "items": [{"sku": "a", "quantity": 2}]}
    assert sent[0][1]["data"] == {}
    strict = recording_client(sent, middleware=[ValidationMiddleware(SCHEMAS, reject_unknown=True)])
    with pytest.raises(InvalidEventError, match="no schema"):
        strict.send_sync({"name": "x/y"})


async def test_received_data_is_the_model_and_invalid_data_fails_without_retry() -> None:
    client = dev_client(middleware=[ValidationMiddleware(SCHEMAS)])
    calls: list[str] = []

    @client.create_function(fn_id="f", trigger=stepwise.TriggerEvent(event="shop/order.placed"))
    async def f(ctx: stepwise.Context[Any, Order]) -> dict[str, Any]:
        calls.append("ran")
        return {"customer": ctx.event.data.customer, "n": len(ctx.event.data.items)}

    good = {"name": "shop/order.placed", "data": {"customer": "ada", "items": []}}
    bad = {"name": "shop/order.placed", "data": {"items": [{"sku": 1}]}}
    async with App(client, [f]) as app:
        done = await app.call(f, call_body(event=good))
        assert loads(done.content) == {"customer": "ada", "n": 0}
        failed = await app.call(f, call_body(event=bad))
    assert failed.status_code == 500
    assert failed.headers["x-inngest-no-retry"] == "true"
    message = loads(failed.content)["message"]
    assert "data.customer: Field required" in message
    assert "data.items[0].sku: Input should be a valid string" in message
    assert calls == ["ran"]


class Payment(BaseModel):
    order: int
    encrypted: dict[str, str]


async def test_with_encryption_outermost_validation_sees_plaintext_both_ways() -> None:
    from stepwise.ext.encryption import Cipher, EncryptionMiddleware, is_encrypted

    sent: list[Any] = []
    stack = [EncryptionMiddleware("k"), ValidationMiddleware({"pay/now": Payment})]
    client = recording_client(sent, middleware=stack)
    await client.send({"name": "pay/now", "data": {"order": 1, "encrypted": {"card": "4242"}}})
    wire = sent[0][0]["data"]
    assert wire["order"] == 1 and is_encrypted(wire["encrypted"])

    @client.create_function(fn_id="f", trigger=stepwise.TriggerEvent(event="pay/now"))
    async def f(ctx: stepwise.Context[Any, Payment]) -> str:
        return ctx.event.data.encrypted["card"]

    async with App(client, [f]) as app:
        done = await app.call(f, call_body(event={"name": "pay/now", "data": wire}))
    assert Cipher("k").decrypt(loads(done.content)) == "4242"
