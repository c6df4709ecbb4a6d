"""Every step tool and run option, end to end, each also with a ``kill -9`` of the server.

In the "crash" variant a background thread kills the server at a random moment shortly
after the scenario starts and restarts it; the scenario must end exactly the same way.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.harness import Stack, wait_until

TOOLS_FUNCTIONS = 12  # 11 functions and one on_failure handler


@pytest.fixture(params=["steady", "crash"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(
        tmp_path, "tools_app", server_args=["--retry-interval", "1"], functions=TOOLS_FUNCTIONS
    ) as s:
        yield s


class Chaos:
    """Kills the server once at a random moment in a window, then restarts it."""

    def __init__(self, stack: Stack, mode: str, window: tuple[float, float] = (0.05, 1.0)) -> None:
        self.stack = stack
        self.enabled = mode == "crash"
        self.window = window
        self.thread: threading.Thread | None = None
        self.crashed = threading.Event()

    def start(self) -> None:
        if not self.enabled:
            return
        delay = random.Random().uniform(*self.window)

        def run() -> None:
            time.sleep(delay)
            self.stack.server.kill()
            time.sleep(0.2)
            self.stack.server.start_and_wait()
            self.crashed.set()

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=60)
            assert self.crashed.is_set(), "the server did not come back after the crash"


def send(stack: Stack, name: str, data: dict[str, Any] | None = None) -> str:
    """Send an event, retrying while the server is down (as an SDK's client would)."""

    def attempt() -> str | None:
        try:
            return stack.server.send(name, data or {})
        except httpx.HTTPError:
            return None

    result: str = wait_until(attempt, timeout=30, interval=0.1, what=f"sending {name}")
    return result


def finished(stack: Stack, event_id: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        try:
            runs = stack.server.runs(event_id)
        except httpx.HTTPError:
            return None
        return (
            runs[0] if runs and runs[0]["status"] in ("Completed", "Failed", "Cancelled") else None
        )

    result: dict[str, Any] = wait_until(
        done, timeout=timeout, interval=0.1, what=f"the run of {event_id}"
    )
    return result


def pauses(stack: Stack, kind: str) -> int:
    [(count,)] = stack.server.query("SELECT count(*) FROM pauses WHERE kind = ?", (kind,))
    return int(count)


def events_named(stack: Stack, name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = stack.server.http.get("/v1/events", params={"name": name}).json()[
        "data"
    ]
    return data


# ---- wait_for_event ----------------------------------------------------------------


def test_wait_matched_by_expression_among_10000_waiting_runs(stack: Stack, mode: str) -> None:
    waiting = 10_000
    target = 4242
    for start in range(0, waiting, 500):
        batch = [
            {"name": "tools/wait.start", "data": {"order": i, "timeout": "10m"}}
            for i in range(start, start + 500)
        ]
        stack.server.http.post("/e/k", content=json.dumps(batch)).raise_for_status()
    wait_until(
        lambda: pauses(stack, "wait") >= waiting, timeout=120, interval=0.5, what=f"{waiting} waits"
    )
    chaos = Chaos(stack, mode, window=(0.0, 0.3))
    chaos.start()
    approval = send(stack, "tools/approved", {"order": target, "by": "alice"})
    chaos.join()
    assert approval

    def resumed() -> list[dict[str, Any]]:
        return [e for e in stack.app.executions() if e["step"] == "after"]

    wait_until(resumed, timeout=30, what="the resumed run")
    time.sleep(1)  # time for any wrong match to show up too
    assert len({e["run_id"] for e in resumed()}) == 1, "exactly one waiting run matches"
    run_id = resumed()[0]["run_id"]

    def run_now() -> dict[str, Any]:
        data: dict[str, Any] = stack.server.http.get(f"/v1/runs/{run_id}").json()["data"]
        return data

    wait_until(lambda: run_now()["status"] == "Completed", timeout=30, what="completion")
    assert run_now()["output"] == {"matched": True, "by": "alice"}
    assert pauses(stack, "wait") == waiting - 1


def test_wait_times_out(stack: Stack, mode: str) -> None:
    chaos = Chaos(stack, mode)
    chaos.start()
    event_id = send(stack, "tools/wait.start", {"order": 1, "timeout": "2s"})
    chaos.join()
    run = finished(stack, event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"matched": False, "by": None}


def test_an_event_sent_before_the_wait_never_matches_it(stack: Stack, mode: str) -> None:
    send(stack, "tools/approved", {"order": 77, "by": "too-early"})
    time.sleep(0.3)
    chaos = Chaos(stack, mode)
    chaos.start()
    event_id = send(stack, "tools/wait.start", {"order": 77, "timeout": "3s"})
    chaos.join()
    run = finished(stack, event_id)
    assert run["output"] == {"matched": False, "by": None}


# ---- invoke --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, {"ok": 42}),
        ({"mode": "fail"}, {"error": "NonRetriableError", "message": "child refused"}),
        (
            {"mode": "slow", "timeout": "2s"},
            {
                "error": "InngestInvokeTimeoutError",
                "message": "Timed out waiting for invoked function to complete",
            },
        ),
    ],
    ids=["success", "child-failure", "timeout"],
)
def test_invoke(stack: Stack, mode: str, data: dict[str, Any], expected: dict[str, Any]) -> None:
    chaos = Chaos(stack, mode)
    chaos.start()
    event_id = send(stack, "tools/invoke", data)
    chaos.join()
    run = finished(stack, event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == expected


# ---- parallel steps ------------------------------------------------------------------


def test_twenty_parallel_steps_with_one_retried_alone(stack: Stack, mode: str) -> None:
    chaos = Chaos(stack, mode)
    chaos.start()
    event_id = send(stack, "tools/parallel")
    chaos.join()
    run = finished(stack, event_id)
    assert run["status"] == "Completed", stack.logs()
    squares = [i * i for i in range(20)]
    assert run["output"] == [*squares, sum(squares)]
    runs = [e for e in stack.app.executions() if e["run_id"] == run["run_id"]]
    p7 = [e["attempt"] for e in runs if e["step"] == "p7"]
    # A crash may re-run the attempt in flight under the same number; the retries proper
    # still count 0, 1, 2, each once more at most.
    attempts = [a for i, a in enumerate(p7) if i == 0 or p7[i - 1] != a]
    assert attempts == [0, 1, 2] and len(p7) <= 3 + (mode == "crash"), p7
    for i in range(20):
        if i == 7:
            continue
        count = sum(1 for e in runs if e["step"] == f"p{i}")
        # Retrying p7 never re-runs its siblings; a crash may re-run one in flight.
        assert count == 1 or (mode == "crash" and count == 2), f"p{i} ran {count} times"


# ---- cancellation ----------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["run", "sleep", "wait"])
@pytest.mark.parametrize("how", ["event", "api", "bulk"])
def test_cancel(stack: Stack, mode: str, phase: str, how: str) -> None:
    key = f"{how}-{phase}-{mode}"
    event_id = send(stack, "tools/cancellable", {"phase": phase, "key": key})
    wait_until(lambda: stack.server.runs(event_id), timeout=20, what="the run")
    run_id = stack.server.runs(event_id)[0]["run_id"]
    marker = {"run": "long", "sleep": "begin", "wait": "begin"}[phase]
    wait_until(
        lambda: any(e["step"] == marker and e["run_id"] == run_id for e in stack.app.executions()),
        timeout=20,
        what=f"the run to reach {phase}",
    )
    time.sleep(0.3)
    chaos = Chaos(stack, mode, window=(0.0, 0.5))
    chaos.start()
    if how == "event":
        send(stack, "tools/cancel", {"key": key})
    elif how == "api":
        response = wait_until(
            lambda: stack.server.http.delete(f"/v1/runs/{run_id}"), timeout=30, what="DELETE"
        )
        assert response.status_code == 200, response.text
    else:
        body = {
            "app_id": "tools",
            "function_id": "cancellable",
            "started_before": "2100-01-01T00:00:00Z",
            "if": f"event.data.key == '{key}'",
        }
        response = wait_until(
            lambda: stack.server.http.post("/v1/cancellations", json=body), timeout=30, what="POST"
        )
        assert response.status_code == 200, response.text
    chaos.join()
    run = finished(stack, event_id)
    assert run["status"] == "Cancelled", stack.logs()
    time.sleep(1.5 if phase == "run" else 0.5)
    assert not any(e["step"] == "end" and e["run_id"] == run_id for e in stack.app.executions())
    cancelled = [
        e
        for e in events_named(stack, "inngest/function.cancelled")
        if e["data"]["run_id"] == run_id
    ]
    assert len(cancelled) == 1


def test_bulk_cancellations_are_listed_and_deleted(stack: Stack) -> None:
    body = {
        "app_id": "tools",
        "function_id": "cancellable",
        "started_before": "2100-01-01T00:00:00Z",
    }
    created = stack.server.http.post("/v1/cancellations", json=body).json()["data"]
    listed = stack.server.http.get("/v1/cancellations").json()["data"]
    assert [c["id"] for c in listed] == [created["id"]]
    assert listed[0]["function_id"] == "tools-cancellable"
    assert stack.server.http.delete(f"/v1/cancellations/{created['id']}").status_code == 200
    assert stack.server.http.get("/v1/cancellations").json()["data"] == []
    missing = stack.server.http.delete(f"/v1/cancellations/{created['id']}")
    assert missing.status_code == 404 and missing.json()["code"] == "cancellation_not_found"


# ---- timeouts and failure handlers -------------------------------------------------------


def test_finish_timeout_cancels_the_run(stack: Stack, mode: str) -> None:
    chaos = Chaos(stack, mode)
    chaos.start()
    event_id = send(stack, "tools/timed")
    chaos.join()
    run = finished(stack, event_id, timeout=30)
    assert run["status"] == "Cancelled", stack.logs()
    assert not any(
        e["step"] == "end" and e["run_id"] == run["run_id"] for e in stack.app.executions()
    )


def test_start_timeout_cancels_a_run_that_never_starts(stack: Stack, mode: str) -> None:
    stack.app.stop()  # the app is down: the run cannot start
    try:
        chaos = Chaos(stack, mode)
        chaos.start()
        event_id = send(stack, "tools/start-timed")
        chaos.join()
        run = finished(stack, event_id, timeout=30)
        assert run["status"] == "Cancelled", stack.logs()
    finally:
        stack.app.start_and_wait()


def test_on_failure_receives_the_original_event_and_the_error(stack: Stack, mode: str) -> None:
    chaos = Chaos(stack, mode)
    chaos.start()
    event_id = send(stack, "tools/fails", {"who": "bob"})
    chaos.join()
    run = finished(stack, event_id)
    assert run["status"] == "Failed"

    def handled() -> list[dict[str, Any]]:
        return [
            e
            for e in stack.app.executions()
            if e["step"] == "on-failure" and e["original"]["id"] == event_id
        ]

    [call] = wait_until(handled, timeout=30, what="the failure handler")
    assert call["original"]["data"] == {"who": "bob"}
    assert call["error"]["message"] == "broken for bob"


# ---- signals, fetch, sync ---------------------------------------------------------------


def test_wait_for_signal(stack: Stack, mode: str) -> None:
    signal = f"sig-{mode}"
    event_id = send(stack, "tools/signal.wait", {"signal": signal})
    wait_until(lambda: pauses(stack, "signal") == 1, timeout=20, what="the signal wait")
    chaos = Chaos(stack, mode, window=(0.0, 0.3))
    chaos.start()
    response = wait_until(
        lambda: stack.server.http.post("/v1/signals", json={"signal": signal, "data": {"ok": 1}}),
        timeout=30,
        what="POST",
    )
    chaos.join()
    assert response.status_code == 200, response.text
    run = finished(stack, event_id)
    assert run["output"] == {"signal": signal, "data": {"ok": 1}}
    nobody = stack.server.http.post("/v1/signals", json={"signal": "nobody-waits"})
    assert nobody.status_code == 404 and nobody.json()["code"] == "signal_not_found"


def test_fetch_is_made_by_the_server(stack: Stack, mode: str) -> None:
    chaos = Chaos(stack, mode)
    chaos.start()
    event_id = send(stack, "tools/fetch")
    chaos.join()
    run = finished(stack, event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"status": 200, "body": {"status": "ok"}, "drop_in": 200}
    history = stack.server.http.get(f"/v1/runs/{run['run_id']}/history").json()["data"]
    fetched = [h["name"] for h in history if h["kind"] == "StepCompleted"]
    assert fetched == ["get-health", f"fetch:GET {stack.server.url}/health"]


def test_a_sync_function_using_every_tool(stack: Stack, mode: str) -> None:
    chaos = Chaos(stack, mode)
    chaos.start()
    event_id = send(stack, "tools/sync", {"token": f"T-{mode}"})
    wait_until(lambda: pauses(stack, "wait") >= 1, timeout=30, what="the sync function's wait")
    send(stack, "tools/sync.go", {"token": f"T-{mode}", "extra": True})
    wait_until(
        lambda: pauses(stack, "signal") >= 1, timeout=30, what="the sync function's signal wait"
    )
    signal = {"signal": f"sync-T-{mode}", "data": "go"}
    wait_until(
        lambda: stack.server.http.post("/v1/signals", json=signal).status_code == 200,
        timeout=30,
        what="signal",
    )
    chaos.join()
    run = finished(stack, event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {
        "a": 1,
        "pair": [2, 3],
        "sent": 1,
        "waited": {"token": f"T-{mode}", "extra": True},
        "signalled": {"signal": f"sync-T-{mode}", "data": "go"},
        "invoked": 10,
        "fetched": 200,
    }
