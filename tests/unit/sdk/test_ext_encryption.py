"""``stepwise.ext.encryption``: the envelope of the official packages, keys, and what is
encrypted on the way out and decrypted on the way in (run end to end, with the official
SDK as a peer, in ``tests/integration/test_encryption.py``)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import inngest
import nacl.bindings
import nacl.utils
import pytest
from inngest_encryption import EncryptionMiddleware as OfficialEncryption
from sdk_support import App, call_body, dev_client, h, ops

import stepwise
from stepwise.ext.encryption import (
    Cipher,
    DecryptionError,
    EncryptionMiddleware,
    is_encrypted,
    secret_box_key,
)
from stepwise.protocol import loads

KEY = "correct horse battery staple"


def official() -> OfficialEncryption:
    client = inngest.Inngest(app_id="peer", is_production=False)
    return OfficialEncryption(client, None, KEY)


def js_envelope(value: Any, key: str) -> dict[str, Any]:
    """What ``@inngest/middleware-encryption``'s LibSodium strategy writes, built here from
    its recipe with other primitives: generichash(32, key), nonce || secretbox, base64."""
    box_key = hashlib.blake2b(key.encode(), digest_size=32).digest()
    nonce = nacl.utils.random(24)
    sealed = nacl.bindings.crypto_secretbox(json.dumps(value).encode(), nonce, box_key)
    data = base64.b64encode(nonce + sealed).decode()
    return {"__ENCRYPTED__": True, "__STRATEGY__": "libsodium", "data": data}


def test_the_official_python_package_and_ours_read_each_other() -> None:
    ours, theirs = Cipher(KEY), official()
    value = {"card": "4242", "n": [1, 2.5, None], "name": "Zoë"}
    envelope = ours.encrypt(value)
    assert set(envelope) == {"__ENCRYPTED__", "__STRATEGY__", "data"}
    assert envelope["__STRATEGY__"] == "inngest/libsodium"
    assert theirs._decrypt(envelope) == value
    assert ours.decrypt(theirs._encrypt(value)) == value


def test_the_js_envelope_is_read_and_can_be_written() -> None:
    assert Cipher(KEY).decrypt(js_envelope({"a": 1}, KEY)) == {"a": 1}
    written = Cipher(KEY, strategy="libsodium").encrypt("x")
    assert written["__STRATEGY__"] == "libsodium"
    combined = base64.b64decode(written["data"])
    box_key = hashlib.blake2b(KEY.encode(), digest_size=32).digest()
    plain = nacl.bindings.crypto_secretbox_open(combined[24:], combined[:24], box_key)
    assert json.loads(plain) == "x"


def test_keys_fallbacks_and_failures() -> None:
    raw = bytes(range(32))
    assert secret_box_key(raw) == raw
    assert secret_box_key(raw.hex().encode()) == raw  # the official package's bytes keys
    with pytest.raises(stepwise.ConfigError):
        secret_box_key(b"short")
    with pytest.raises(stepwise.ConfigError):
        secret_box_key("  ")
    old = Cipher("old").encrypt({"v": 1})
    assert Cipher("new", ["older", "old"]).decrypt(old) == {"v": 1}
    with pytest.raises(DecryptionError, match="no encryption key"):
        Cipher("new").decrypt(old)
    # Not an envelope (no marker, an unknown strategy): left as it is.
    unknown = {"__ENCRYPTED__": True, "__STRATEGY__": "aes", "data": "x"}
    assert not is_encrypted(unknown)
    assert Cipher("new").decrypt(unknown) == unknown


async def test_outputs_events_and_invoke_payloads_are_encrypted_on_the_way_out() -> None:
    sent: list[Any] = []

    def api(request: httpx.Request) -> httpx.Response:
        sent.append(loads(request.content))
        return httpx.Response(200, json={"ids": ["E1"], "status": 200})

    cipher = Cipher(KEY)
    client = dev_client(httpx.MockTransport(api), event_key="k")

    @client.create_function(
        fn_id="f",
        trigger=stepwise.TriggerEvent(event="x"),
        middleware=[EncryptionMiddleware(KEY)],
    )
    async def f(ctx: stepwise.Context) -> Any:
        secret = await ctx.step.run("read", lambda: ctx.event.data["encrypted"])
        await ctx.step.invoke("child", function="demo-child", data={"encrypted": secret, "n": 1})
        return {"got": secret, "memo": ctx.event.data["plain"]}

    event = {"name": "x", "data": {"encrypted": cipher.encrypt("s3cret"), "plain": "p"}}
    async with App(client, [f]) as app:
        [ran] = ops(await app.call(f, call_body(event=event)))
        assert is_encrypted(ran["data"]) and cipher.decrypt(ran["data"]) == "s3cret"
        memos = {h("read"): {"data": ran["data"]}}
        [invoke] = ops(await app.call(f, call_body(event=event, steps=memos)))
        data = invoke["opts"]["payload"]["data"]
        assert data["n"] == 1 and cipher.decrypt(data["encrypted"]) == "s3cret"
        # The child's output comes back encrypted, as a memo; the function's is sealed too.
        memos[h("child")] = {"data": cipher.encrypt({"child": True})}
        done = await app.call(f, call_body(event=event, steps=memos))
    assert cipher.decrypt(loads(done.content)) == {"got": "s3cret", "memo": "p"}

    encrypting = dev_client(
        httpx.MockTransport(api), event_key="k", middleware=[EncryptionMiddleware(KEY)]
    )
    await encrypting.send({"name": "y", "data": {"encrypted": {"card": 1}, "other": 2}})
    wire = sent[-1][0]["data"]
    assert wire["other"] == 2 and cipher.decrypt(wire["encrypted"]) == {"card": 1}


async def test_decrypt_only_reads_but_writes_in_clear_and_failed_events_are_opened() -> None:
    cipher = Cipher(KEY)
    client = dev_client(middleware=[EncryptionMiddleware(KEY, decrypt_only=True)])

    @client.create_function(fn_id="f", trigger=stepwise.TriggerEvent(event="x"))
    async def f(ctx: stepwise.Context) -> Any:
        return ctx.event.data["event"]["data"]["encrypted"]

    failed = {
        "name": "inngest/function.failed",
        "data": {"event": {"name": "x", "data": {"encrypted": cipher.encrypt([1, 2])}}},
    }
    async with App(client, [f]) as app:
        done = await app.call(f, call_body(event=failed))
    assert loads(done.content) == [1, 2]
