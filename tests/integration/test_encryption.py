"""``stepwise.ext.encryption`` end to end: our app and an app of the official Python SDK
with the official encryption middleware (PyPI ``inngest-encryption``) share one server and
one key, and read what the other wrote; the server's database never holds the plaintext.

Data crosses both ways three times: an event field (sent by our client, by our step's
``send_event``), an invoke payload (each app invokes the other) and a function output
(each invoke's result is the other app's encrypted output), besides every step output.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stepwise
from stepwise.ext.encryption import Cipher, EncryptionMiddleware, is_encrypted
from support.harness import AppProcess, ServerProcess, free_port, wait_until

KEY = "the-current-key-" + "k" * 16
OLD_KEY = "the-retired-key-" + "o" * 16
OUR_FUNCTIONS, OFFICIAL_FUNCTIONS = 3, 2


class Apps:
    def __init__(self, server: ServerProcess, ours: AppProcess, official: AppProcess) -> None:
        self.server, self.ours, self.official = server, ours, official

    def ledger(self) -> list[dict[str, Any]]:
        return self.ours.executions() + self.official.executions()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log_path.name} ---\n{p.log()}" for p in (self.server, self.ours, self.official)
        )


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Apps]:
    port = free_port()
    server_url = f"http://127.0.0.1:{port}"
    env = {"STEPWISE_TEST_KEY": KEY, "STEPWISE_TEST_OLD_KEY": OLD_KEY}
    ours = AppProcess(tmp_path, "encryption_app", server_url=server_url, extra_env=env)
    official = AppProcess(tmp_path, "official_encryption", server_url=server_url, extra_env=env)
    server = ServerProcess(tmp_path, port=port, sdk_urls=[ours.url, official.url])
    with contextlib.ExitStack() as stack:
        for process in (ours, official, server):
            stack.callback(process.stop)
        ours.start_and_wait()
        official.start_and_wait()
        server.start_and_wait()
        server.wait_for_functions(OUR_FUNCTIONS + OFFICIAL_FUNCTIONS)
        yield Apps(server, ours, official)
    server.close()


def send(server: ServerProcess, key: str, name: str, data: dict[str, Any]) -> str:
    client = stepwise.Stepwise(
        "sender",
        is_production=False,
        event_key=server.event_key,
        event_api_base_url=server.url,
        api_base_url=server.url,
        middleware=[EncryptionMiddleware(key)],
    )
    [event_id] = asyncio.run(client.send({"name": name, "data": data}))
    return event_id


def every_stored_value(server: ServerProcess) -> str:
    """Every row of every table of the server's database, as one text."""
    tables = server.tables()
    assert "runs" in tables and "events" in tables, tables
    parts: list[str] = []
    for table in tables:
        for row in server.query(f'SELECT * FROM "{table}"'):
            for value in row:
                parts.append(
                    value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                )
    return "\n".join(parts)


def run_of(server: ServerProcess, function_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        runs = server.http.get("/v1/runs", params={"function": function_id}).json()["data"]
        done = [r for r in runs if r["status"] in ("Completed", "Failed", "Cancelled")]
        return done[0] if done else None

    found: dict[str, Any] = wait_until(
        ended, timeout=60, interval=0.2, what=f"a run of {function_id}"
    )
    return found


def test_each_sdk_reads_what_the_other_encrypted_and_the_server_sees_no_plaintext(
    apps: Apps,
) -> None:
    secret = "plain-" + secrets.token_hex(8)
    send(apps.server, KEY, "enc/ours.start", {"encrypted": {"secret": secret}, "note": "clear"})

    ours = run_of(apps.server, "enc-ours-start")
    official = run_of(apps.server, "enc-official-start")
    assert ours["status"] == official["status"] == "Completed", apps.logs()

    cipher = Cipher(KEY)
    # Both outputs are stored encrypted; the key opens them.
    assert is_encrypted(ours["output"]) and is_encrypted(official["output"])
    assert cipher.decrypt(ours["output"]) == {
        "secret": secret,
        "official_echo": {"echo": secret + "-via-invoke"},
    }
    assert cipher.decrypt(official["output"]) == {
        "secret": secret + "-via-send",
        "ours_echo": {"echo": secret + "-via-send-via-official-invoke"},
    }
    # What each function read in clear, as its ledger tells.
    read = {(e["kind"], str(e["value"])) for e in apps.ledger()}
    assert ("ours.start.read", secret) in read  # our event field, sent by our client
    assert ("official.start.read", secret + "-via-send") in read  # sent by our step
    assert ("official.echo", str({"secret": secret + "-via-invoke"})) in read  # our invoke
    assert ("ours.echo", str({"secret": secret + "-via-send-via-official-invoke"})) in read
    assert ("ours.start.echoed", str({"echo": secret + "-via-invoke"})) in read
    assert (
        "official.start.echoed",
        str({"echo": secret + "-via-send-via-official-invoke"}),
    ) in read

    stored = every_stored_value(apps.server)
    assert "the-current-key" not in stored
    assert "clear" in stored, "fields outside the encrypted one stay readable"
    assert secret not in stored, "the server's database holds the plaintext"
    if apps.server.backend == "sqlite":
        for path in apps.server.db.parent.glob("stepwise.db*"):
            assert secret.encode() not in path.read_bytes(), path


def test_a_fallback_key_reads_what_the_retired_key_wrote(apps: Apps) -> None:
    secret = "old-" + secrets.token_hex(8)
    send(apps.server, OLD_KEY, "enc/rotated", {"encrypted": {"secret": secret}})
    run = run_of(apps.server, "enc-ours-rotated")
    assert run["status"] == "Completed", apps.logs()
    assert Cipher(KEY).decrypt(run["output"]) == {"event": {"secret": secret}, "step": {"n": 1}}
    with pytest.raises(Exception, match="no encryption key"):
        Cipher(OLD_KEY).decrypt(run["output"])  # written with the current key
    assert secret not in every_stored_value(apps.server)
