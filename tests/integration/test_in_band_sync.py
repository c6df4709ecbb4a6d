"""In-band sync: ``stepwise start`` asks an app to sync with a signed PUT carrying
``X-Inngest-Sync-Kind: in_band``; an app that can answers with its config, signed, and the
server stores it. Out-of-band sync (the app posts to ``/fn/register``) keeps working for
apps that do not answer in band, and is what ``stepwise dev`` asks for.

To tell the two apart, the apps here are given an API URL where nothing listens: an app
synced in band never needed to reach the server, one synced out of band could not have.
Syncing is an exchange with the app; the store's side is the same as for ``/fn/register``,
which runs on every backend elsewhere: these tests run on SQLite only.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwise.protocol import sign
from support.harness import AppProcess, ServerProcess, free_port, wait_until
from support.peer import Answer, Peer, Received, function_config

pytestmark = pytest.mark.backends("sqlite")  # the exchange is under test, not the store

SIGNING_KEY = "signkey-prod-" + "3c" * 32


@contextlib.contextmanager
def production_stack(
    tmp: Path, module: str, *, api_reachable: bool, app_env: dict[str, str] | None = None
) -> Iterator[tuple[ServerProcess, AppProcess]]:
    port = free_port()
    api = f"http://127.0.0.1:{port if api_reachable else free_port()}"
    env = {"STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY, **(app_env or {})}
    app = AppProcess(tmp, module, server_url=api, extra_env=env)
    server = ServerProcess(tmp, port=port, sdk_urls=[app.url], extra_args=["--retry-interval", "1"])
    server.production(signing_key=SIGNING_KEY, event_key="test-event-key")
    try:
        app.start_and_wait()
        server.start_and_wait()
        yield server, app
    finally:
        app.stop()
        server.close()


def apps(server: ServerProcess) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = server.http.get("/v1/apps").json()["data"]
    return data


def sync_record(server: ServerProcess, url: str) -> dict[str, Any]:
    syncs = server.http.get("/v1/app-syncs").json()["data"]
    (record,) = [s for s in syncs if s["url"] == url]
    return dict(record)


def test_our_sdk_syncs_in_band_with_stepwise_start(backend: str, tmp_path: Path) -> None:
    with production_stack(tmp_path, "durable_app", api_reachable=False) as (server, app):
        server.wait_for_functions(8)
        (synced,) = apps(server)
        assert (synced["name"], synced["url"], synced["sdk"], synced["framework"]) == (
            "durable",
            app.url,
            "py:v0.1.0",
            "starlette",
        )
        run = server.wait_for_run(server.send("test/three", {"n": 1}))
        assert (run["status"], run["output"]) == ("Completed", {"a": 2, "b": 4, "c": "done"})
        assert sync_record(server, app.url)["status"] == "ok"


def test_the_official_python_sdk_syncs_in_band_with_stepwise_start(
    backend: str, tmp_path: Path
) -> None:
    """The Python SDK answers in band when it runs in production mode and the PUT is signed."""
    with production_stack(tmp_path, "official_py", api_reachable=False) as (server, _app):
        server.wait_for_functions(2)
        (synced,) = apps(server)
        assert (synced["name"], synced["framework"]) == ("official-py", "fast_api")
        assert synced["sdk"].startswith("py:v0.5.")
        run = server.wait_for_run(server.send("interop/fail"))
        assert run["status"] == "Failed" and run["output"]["message"] == "no way"


def test_an_app_that_will_not_sync_in_band_syncs_out_of_band(backend: str, tmp_path: Path) -> None:
    off = {"INNGEST_ALLOW_IN_BAND_SYNC": "false"}
    with production_stack(tmp_path, "durable_app", api_reachable=True, app_env=off) as (server, _):
        server.wait_for_functions(8)
        run = server.wait_for_run(server.send("test/three", {"n": 2}))
        assert run["status"] == "Completed"
    # The same app, unable to reach the server's API, cannot sync at all: it was out of band.
    (tmp_path / "unreachable").mkdir()
    with production_stack(
        tmp_path / "unreachable", "durable_app", api_reachable=False, app_env=off
    ) as (server, _app):
        record = wait_until(
            lambda: next((s for s in server.http.get("/v1/app-syncs").json()["data"]), None),
            timeout=20,
            what="a sync attempt",
        )
        assert record["status"] == "failing", record
        assert apps(server) == []


class InBandPeer:
    """An "app" answering the sync PUT in band, signed as its mode says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.peer = Peer(self.respond)

    def respond(self, request: Received) -> Answer:
        if request.method != "PUT":
            return Answer(405)
        assert request.headers.get("x-inngest-sync-kind") == "in_band"
        url = json.loads(request.body)["url"]
        answer = {
            "app_id": f"peer-{self.mode}",
            "url": url,
            "framework": "test",
            "sdk_language": "py",
            "sdk_version": "9.9.9",
            "functions": [function_config(f"peer-{self.mode}-fn", url, event="peer/go", retries=0)],
        }
        if self.mode == "bad-config":
            answer["functions"] = [{"id": "peer-bad-config-fn"}]
        body = json.dumps(answer).encode()
        headers = {"content-type": "application/json", "x-inngest-sync-kind": "in_band"}
        if self.mode in ("signed", "bad-config"):
            headers["x-inngest-signature"] = sign(body, SIGNING_KEY)
        elif self.mode == "other-key":
            headers["x-inngest-signature"] = sign(body, "signkey-prod-" + "99" * 32)
        return Answer(200, headers, body)


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("signed", None),
        ("unsigned", "not signed with the server's key"),
        ("other-key", "not signed with the server's key"),
        ("bad-config", "has no steps"),
    ],
)
def test_the_server_takes_an_in_band_answer_only_when_signed_and_valid(
    backend: str, tmp_path: Path, mode: str, error: str | None
) -> None:
    fake = InBandPeer(mode)
    with fake.peer:
        url = f"{fake.peer.url}/api/inngest"
        server = ServerProcess(tmp_path, sdk_urls=[url])
        server.production(signing_key=SIGNING_KEY, event_key="test-event-key")
        try:
            server.start_and_wait()
            record = wait_until(
                lambda: next(
                    (s for s in server.http.get("/v1/app-syncs").json()["data"] if s["url"] == url),
                    None,
                ),
                timeout=20,
                what="the peer's sync",
            )
            if error is None:
                assert record["status"] == "ok", record
                (synced,) = apps(server)
                assert (synced["name"], synced["sdk"]) == ("peer-signed", "py:v9.9.9")
                assert [f["slug"] for f in synced["functions"]] == ["peer-signed-fn"]
            else:
                assert record["status"] == "failing" and error in record["error"], record
                assert apps(server) == []
        finally:
            server.close()
