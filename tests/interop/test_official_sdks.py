"""The official Inngest SDKs (PyPI ``inngest``, npm ``inngest``) run their functions on our server unchanged.

Both apps declare the same two functions, so one set of assertions checks both peers.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import REPO, AppProcess, ServerProcess, free_port

JS_DIR = REPO / "tests" / "interop" / "js"

SIGNING_KEY = "signkey-prod-" + "5e" * 32

# Each official SDK in dev mode, and in production mode against `stepwise start`: there the
# server signs every request and the SDK verifies it, the SDK signs every reply and the server
# verifies that, and the SDK syncs with a hashed key. The JS SDK also streams its replies
# (201, keep-alive spaces, then the final status, headers and body in one JSON chunk).
PEERS = [
    pytest.param(("official_py", "official-py", False, {}), id="python-sdk-dev"),
    pytest.param(("app.mjs", "official-js", False, {}), id="js-sdk-dev"),
    pytest.param(("official_py", "official-py", True, {}), id="python-sdk-production"),
    pytest.param(("app.mjs", "official-js", True, {}), id="js-sdk-production"),
    pytest.param(
        ("app.mjs", "official-js", True, {"INNGEST_STREAMING": "true"}),
        id="js-sdk-production-streaming",
    ),
]


@contextlib.contextmanager
def peer_stack(
    tmp_path: Path, module: str, production: bool, env: dict[str, str]
) -> Iterator[tuple[ServerProcess, AppProcess]]:
    if module.endswith(".mjs") and not (JS_DIR / "node_modules" / "inngest").is_dir():
        # `make test` installs it (npm ci); a missing install is a broken setup, not a skip.
        pytest.fail(f"the JS SDK is not installed: run `npm ci --prefix {JS_DIR}`")
    assert shutil.which("node"), "Node.js is required for the JS interop tests"
    port = free_port()
    app_env = {**env, "STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY} if production else env
    app = AppProcess(tmp_path, module, server_url=f"http://127.0.0.1:{port}", extra_env=app_env)
    server = ServerProcess(
        tmp_path, port=port, sdk_urls=[app.url], extra_args=["--retry-interval", "1"]
    )
    if production:
        server.production(signing_key=SIGNING_KEY, event_key="test-event-key")
    try:
        app.start_and_wait()
        server.start_and_wait()
        server.wait_for_functions(2)
        yield server, app
    finally:
        app.stop()
        server.close()


@pytest.fixture(params=PEERS)
def stack(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ServerProcess, AppProcess, str]]:
    module, app_id, production, env = request.param
    with peer_stack(tmp_path, module, production, env) as (server, app):
        yield server, app, app_id


def test_steps_sleep_retry_and_send_event(stack: tuple[ServerProcess, AppProcess, str]) -> None:
    server, app, _ = stack
    event_id = server.send("interop/three", {"n": 21, "fail_second_once": True})
    run = server.wait_for_run(event_id, timeout=30)
    assert run["status"] == "Completed", server.log() + app.log()
    assert run["output"] == {"a": 21, "b": 42, "sent": 1}

    steps = [(e["step"], e["attempt"]) for e in app.executions() if e["run_id"] == run["run_id"]]
    # "first" ran once and never again; "second" failed on attempt 0 and succeeded on attempt 1.
    assert [s for s in steps if s[0] == "first"] == [("first", 0)]
    assert [s for s in steps if s[0] == "second"] == [("second", 0), ("second", 1)]

    announced = server.http.get("/v1/events", params={"name": "interop/announced"}).json()["data"]
    assert [e["data"] for e in announced] == [{"b": 42}]


def test_non_retriable_error_fails_the_run(stack: tuple[ServerProcess, AppProcess, str]) -> None:
    server, app, app_id = stack
    event_id = server.send("interop/fail")
    run = server.wait_for_run(event_id, timeout=20)
    assert run["status"] == "Failed", server.log() + app.log()
    assert run["output"]["message"] == "no way"
    failed = server.http.get("/v1/events", params={"name": "inngest/function.failed"}).json()[
        "data"
    ]
    assert failed and failed[0]["data"]["run_id"] == run["run_id"]
    assert failed[0]["data"]["function_id"] == f"{app_id}-fails"


def test_python_sdk_streaming_is_refused_in_production(tmp_path: Path) -> None:
    """The Python SDK signs a streamed reply over ``null``, not over the final body it sends
    (inngest 0.5.x, ``comm_lib``): the server cannot tell it from a forged one, so the run
    fails with a ``SignatureError`` that says why, and none of the reply's steps is kept."""
    env = {"INNGEST_STREAMING": "force"}
    with peer_stack(tmp_path, "official_py", True, env) as (server, app):
        run = server.wait_for_run(server.send("interop/three", {"n": 1}), timeout=30)
        assert run["status"] == "Failed", server.log() + app.log()
        assert run["output"]["name"] == "SignatureError"
        assert "streamed reply" in run["output"]["message"]
        history = server.http.get(f"/v1/runs/{run['run_id']}/history").json()["data"]
        assert not [h for h in history if h["kind"] == "StepCompleted"]


def test_dev_lists_the_functions_as_the_js_sdk_tests_read_them(
    stack: tuple[ServerProcess, AppProcess, str],
) -> None:
    server, app, _ = stack
    if "start" in server.args:
        assert server.http.get("/dev").status_code == 404  # a dev-server page only
        return
    expected = [
        {"name": "three-steps", "slug": "three-steps", "triggers": [{"event": "interop/three"}]},
        {"name": "fails", "slug": "fails", "triggers": [{"event": "interop/fail"}]},
    ]
    # The JS SDK's own test helper parses /dev with zod; run that check with the same zod.
    check = subprocess.run(
        ["node", str(JS_DIR / "check_dev.mjs"), server.url, json.dumps(expected)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr + server.log() + app.log()
