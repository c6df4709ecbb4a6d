"""The official Inngest Python SDK (PyPI ``inngest``) runs its functions on our server unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import AppProcess, ServerProcess, free_port


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[ServerProcess, AppProcess]]:
    port = free_port()
    app = AppProcess(tmp_path, "official_py", server_url=f"http://127.0.0.1:{port}")
    server = ServerProcess(
        tmp_path, port=port, sdk_urls=[app.url], extra_args=["--retry-interval", "1"]
    )
    app.start_and_wait()
    server.start_and_wait()
    try:
        server.wait_for_functions(2)
        yield server, app
    finally:
        app.stop()
        server.close()


def test_steps_sleep_retry_and_send_event(stack: tuple[ServerProcess, AppProcess]) -> None:
    server, app = stack
    event_id = server.send("interop/three", {"n": 21, "fail_second_once": True})
    run = server.wait_for_run(event_id, timeout=30)
    assert run["status"] == "Completed", server.log()
    assert run["output"] == {"a": 21, "b": 42, "sent": 1}

    steps = [(e["step"], e["attempt"]) for e in app.executions() if e["run_id"] == run["run_id"]]
    # "first" ran once and was never re-run; "second" failed once, then succeeded on attempt 1.
    assert steps.count(("first", 0)) == 1
    assert [s for s in steps if s[0] == "first"] == [("first", 0)]
    assert [s for s in steps if s[0] == "second"] == [("second", 0), ("second", 1)]

    announced = server.http.get("/v1/events", params={"name": "interop/announced"}).json()["data"]
    assert [e["data"] for e in announced] == [{"b": 42}]


def test_non_retriable_error_fails_the_run(stack: tuple[ServerProcess, AppProcess]) -> None:
    server, _ = stack
    event_id = server.send("interop/fail")
    run = server.wait_for_run(event_id, timeout=20)
    assert run["status"] == "Failed"
    assert run["output"]["message"] == "no way"
    failed = server.http.get("/v1/events", params={"name": "inngest/function.failed"}).json()[
        "data"
    ]
    assert failed and failed[0]["data"]["run_id"] == run["run_id"]
    assert failed[0]["data"]["function_id"] == "official-py-fails"
