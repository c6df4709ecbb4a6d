"""Streamed replies (``INNGEST_STREAMING``) from our SDK and from the official Python SDK.

An app that streams answers a call with ``201`` at once, sends a space every few seconds
while the function runs, then one JSON chunk with the real status, headers and body. The
server must act on that chunk exactly as on a plain reply: steps, sleeps, retries and
failures all go through it. In production the server also checks who sent it: our SDK
signs the final chunk over the body it carries; the official Python SDK signs only the
opening (over ``null``), which ``stepwise start`` acts on only when told to with
``--accept-unsigned-stream-bodies``.

Streaming is a matter of the HTTP exchange, not of storage: these tests run on SQLite only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepwise.protocol import canonical_json, hash_step_id, loads, sign
from support.harness import AppProcess, ServerProcess, free_port

pytestmark = pytest.mark.backends("sqlite")  # the exchange is under test, not the store

SIGNING_KEY = "signkey-prod-" + "7a" * 32
STREAM = {"INNGEST_STREAMING": "force"}


@contextlib.contextmanager
def stack(
    tmp: Path, module: str, *, production: bool, functions: int, server_args: tuple[str, ...] = ()
) -> Iterator[tuple[ServerProcess, AppProcess]]:
    port = free_port()
    env = {**STREAM, "STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY} if production else dict(STREAM)
    app = AppProcess(tmp, module, server_url=f"http://127.0.0.1:{port}", extra_env=env)
    server = ServerProcess(
        tmp, port=port, sdk_urls=[app.url], extra_args=["--retry-interval", "1", *server_args]
    )
    if production:
        server.production(signing_key=SIGNING_KEY, event_key="test-event-key")
    try:
        app.start_and_wait()
        server.start_and_wait()
        server.wait_for_functions(functions)
        yield server, app
    finally:
        app.stop()
        server.close()


def call_body(fn_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """A first call of a run, as the server sends it, for asking an app directly."""
    ev = {"id": "01HEVENT0000000000000000000", "ts": 1700000000000, "user": {}, **event}
    ctx = {
        "fn_id": fn_id,
        "run_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "env": "",
        "step_id": "step",
        "attempt": 0,
        "max_attempts": 3,
        "stack": {"stack": [], "current": 0},
        "disable_immediate_execution": False,
        "use_api": False,
    }
    return {"event": ev, "events": [ev], "steps": {}, "ctx": ctx, "version": -1, "use_api": False}


def assert_app_streams(app: AppProcess, fn_id: str, event: dict[str, Any], signed: bool) -> None:
    """The app really answers calls with a stream (so the runs below went through one)."""
    body = canonical_json(call_body(fn_id, event))
    headers = {"content-type": "application/json"}
    if signed:
        headers["x-inngest-signature"] = sign(body, SIGNING_KEY)
    response = httpx.post(
        app.url, params={"fnId": fn_id, "stepId": "step"}, content=body, headers=headers, timeout=30
    )
    assert response.status_code == 201, response.text
    final = loads(response.content)
    assert final["status"] == 206 and isinstance(final["body"], str), final


def history_kinds(server: ServerProcess, run_id: str) -> list[str]:
    return [h["kind"] for h in server.history(run_id)]


@pytest.mark.parametrize("production", [False, True], ids=["dev", "production"])
def test_our_sdk_streams_steps_sleeps_retries_and_failures(
    backend: str, tmp_path: Path, production: bool
) -> None:
    with stack(tmp_path, "durable_app", production=production, functions=8) as (server, app):
        assert_app_streams(
            app, "durable-three-steps", {"name": "test/three", "data": {"n": 1}}, production
        )

        run = server.wait_for_run(server.send("test/three", {"n": 4}))
        assert (run["status"], run["output"]) == (
            "Completed",
            {"a": 5, "b": 10, "c": "done"},
        ), server.log() + app.log()

        # A step that fails once: the StepError arrives in the final chunk and is retried.
        run = server.wait_for_run(server.send("test/flaky", {"failures": 1}))
        assert (run["status"], run["output"]) == ("Completed", "ok on attempt 1"), server.log()

        run = server.wait_for_run(server.send("test/non-retriable"))
        assert run["status"] == "Failed", server.log()
        assert run["output"]["message"] == "card declined for good"
        assert "SignatureError" not in str(server.history(run["run_id"]))


def test_a_step_longer_than_the_keepalive_interval(backend: str, tmp_path: Path) -> None:
    """Keep-alive spaces (one every 3 s) come before the final chunk; the server waits them out."""
    with stack(tmp_path, "durable_app", production=False, functions=8) as (server, _app):
        run = server.wait_for_run(
            server.send("test/slow", {"step_seconds": 3.5, "sleep": "1s"}), timeout=60
        )
        assert (run["status"], run["output"]) == ("Completed", [0, 1, 2]), server.log()


def test_the_official_python_sdk_streams_to_the_dev_server(backend: str, tmp_path: Path) -> None:
    with stack(tmp_path, "official_py", production=False, functions=2) as (server, app):
        assert_app_streams(
            app, "official-py-three-steps", {"name": "interop/three", "data": {"n": 1}}, False
        )

        event = server.send("interop/three", {"n": 21, "fail_second_once": True})
        run = server.wait_for_run(event, timeout=30)
        assert (run["status"], run["output"]) == (
            "Completed",
            {"a": 21, "b": 42, "sent": 1},
        ), server.log() + app.log()
        steps = [
            (e["step"], e["attempt"]) for e in app.executions() if e["run_id"] == run["run_id"]
        ]
        assert [s for s in steps if s[0] == "second"] == [("second", 0), ("second", 1)]

        failed = server.wait_for_run(server.send("interop/fail"))
        assert failed["status"] == "Failed" and failed["output"]["message"] == "no way"


def test_the_official_python_sdk_streams_in_production_when_the_server_accepts_it(
    backend: str, tmp_path: Path
) -> None:
    with stack(
        tmp_path,
        "official_py",
        production=True,
        functions=2,
        server_args=("--accept-unsigned-stream-bodies",),
    ) as (server, app):
        assert_app_streams(
            app, "official-py-three-steps", {"name": "interop/three", "data": {"n": 1}}, True
        )
        run = server.wait_for_run(server.send("interop/three", {"n": 2}), timeout=30)
        assert (run["status"], run["output"]) == (
            "Completed",
            {"a": 2, "b": 4, "sent": 1},
        ), server.log() + app.log()
        kinds = history_kinds(server, run["run_id"])
        assert "AttemptFailed" not in kinds and kinds.count("StepCompleted") >= 2, kinds


def test_the_official_python_sdk_stream_is_refused_in_production_by_default(
    backend: str, tmp_path: Path
) -> None:
    with stack(tmp_path, "official_py", production=True, functions=2) as (server, app):
        run = server.wait_for_run(server.send("interop/three", {"n": 2}), timeout=30)
        assert run["status"] == "Failed", server.log() + app.log()
        assert run["output"]["name"] == "SignatureError"
        message = run["output"]["message"]
        assert (
            "signed only at its start" in message and "--accept-unsigned-stream-bodies" in message
        )
        kinds = history_kinds(server, run["run_id"])
        assert "StepCompleted" not in kinds and "RunStarted" not in kinds, kinds
        # The step the refused reply claimed ran in the app, and was never recorded.
        assert hash_step_id("first") not in str(server.history(run["run_id"]))
