"""Our SDK checkpoints on our server: sequential steps run inside one call request.

The app (``apps/checkpoint_app.py``) writes every call request it gets, its answer and
every step execution to a ledger, which is what these tests count. The cases follow those
the official JS SDK 4.x is tested with (``tests/interop/test_checkpointing.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwise.protocol import hash_step_id
from support.harness import Stack, wait_until
from support.proxies import FailingPathProxy, GatewayTimeoutProxy

APP = "checkpoint_app"
FUNCTIONS = 9


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("sdk-checkpointing")
    with Stack(tmp, APP, server_args=["--retry-interval", "1"], functions=FUNCTIONS) as s:
        yield s


def ledger(stack: Stack, run_id: str, kind: str) -> list[dict[str, Any]]:
    return stack.app.ledger_of(kind, run_id=run_id)


def calls(stack: Stack, run_id: str) -> int:
    """How many call requests the server sent the app for this run."""
    return len(ledger(stack, run_id, "call"))


def replies(stack: Stack, run_id: str) -> list[list[str] | int]:
    """Each answer's opcodes (a 206), or its status."""
    return [
        e["ops"] if e["ops"] is not None else e["status"] for e in ledger(stack, run_id, "reply")
    ]


def steps_ran(stack: Stack, run_id: str) -> list[tuple[str, int]]:
    return [(e["step"], e["attempt"]) for e in ledger(stack, run_id, "step")]


def run_to_end(stack: Stack, name: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    run = stack.server.wait_for_run(stack.server.send(name, data), timeout=60)
    run_id = run["run_id"]
    # The app records a reply once it is sent, which races with the run's end.
    wait_until(
        lambda: 0 < calls(stack, run_id) == len(replies(stack, run_id)),
        timeout=10,
        what="the app's record of its last reply",
    )
    return run


def history(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = stack.server.http.get(f"/v1/runs/{run_id}/history").json()["data"]
    return data


@pytest.mark.parametrize("event", ["cp/three", "cp/three-sync"])
def test_three_steps_take_one_call_request(stack: Stack, event: str) -> None:
    run = run_to_end(stack, event, {"n": 21})
    assert run["status"] == "Completed", stack.logs()
    run_id = run["run_id"]
    expected = [21, 42, {"sum": 63}] if event == "cp/three" else [1, 2, 3]
    assert run["output"] == expected
    assert calls(stack, run_id) == 1
    assert replies(stack, run_id) == [["RunComplete"]]
    assert steps_ran(stack, run_id) == [("a", 0), ("b", 0), ("c", 0)]
    # Each result was saved by its own checkpoint, in the order the steps ran.
    actions = stack.server.http.get(f"/v0/runs/{run_id}/actions").json()
    assert list(actions.items()) == [
        (hash_step_id(name), {"data": value}) for name, value in zip("abc", expected, strict=True)
    ]
    completed = [h for h in history(stack, run_id) if h["kind"] == "StepCompleted"]
    assert [h["name"] for h in completed] == ["a", "b", "c"]
    assert history(stack, run_id)[-1]["kind"] == "RunCompleted"


def test_checkpointing_off_costs_a_call_per_step(stack: Stack) -> None:
    run = run_to_end(stack, "cp/off")
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == [1, 1, 1]
    run_id = run["run_id"]
    assert calls(stack, run_id) == 4
    assert replies(stack, run_id) == [["StepRun"], ["StepRun"], ["StepRun"], 200]


def test_a_failing_step_is_retried_and_the_next_step_gets_its_own_attempts(stack: Stack) -> None:
    run = run_to_end(stack, "cp/flaky")
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == "ok on attempt 2"
    run_id = run["run_id"]
    ran = steps_ran(stack, run_id)
    assert [a for s, a in ran if s == "pre"] == [0]  # checkpointed: never run again
    assert [a for s, a in ran if s == "flaky"] == [0, 1, 2]
    # The retry that succeeded handed its result back; "post" ran in a call of attempt 0.
    assert [a for s, a in ran if s == "post"] == [0]
    assert replies(stack, run_id) == [["StepError"], ["StepError"], ["StepRun"], ["RunComplete"]]
    errored = [h for h in history(stack, run_id) if h["kind"] == "StepErrored"]
    assert [(h["name"], h["attempt"]) for h in errored] == [("flaky", 0), ("flaky", 1)]


def test_parallel_steps_are_planned_and_checkpointing_resumes_after_them(stack: Stack) -> None:
    run = run_to_end(stack, "cp/parallel")
    assert run["status"] == "Completed", stack.logs()
    run_id = run["run_id"]
    names = [s for s, _ in steps_ran(stack, run_id)]
    assert sorted(names) == sorted(["seq-1", "par-1", "par-2", "after-1", "after-2"])
    answers = replies(stack, run_id)
    # seq-1 saved, then both branches planned | par-1 | par-2 | after-1, after-2 and the end.
    assert answers[0] == ["StepPlanned", "StepPlanned"]
    assert sorted(map(str, answers[1:3])) == [str(["StepRun"])] * 2
    assert answers[3:] == [["RunComplete"]]


def test_a_sleep_after_checkpointed_steps_ends_the_call(stack: Stack) -> None:
    run = run_to_end(stack, "cp/sleep")
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == 6
    run_id = run["run_id"]
    assert replies(stack, run_id) == [["Sleep"], ["RunComplete"]]
    assert steps_ran(stack, run_id) == [("a", 0), ("b", 0), ("c", 0)]
    kinds = [(h["kind"], h["name"]) for h in history(stack, run_id)]
    assert kinds.index(("StepCompleted", "b")) < kinds.index(("SleepStarted", "nap")), kinds


def test_max_runtime_plans_the_next_step(stack: Stack) -> None:
    run = run_to_end(stack, "cp/runtime")
    assert run["status"] == "Completed", stack.logs()
    run_id = run["run_id"]
    # "before" saved, the runtime ran out | "after" targeted | the end.
    assert replies(stack, run_id) == [["StepPlanned"], ["StepRun"], ["RunComplete"]]
    assert steps_ran(stack, run_id) == [("before", 0), ("after", 0)]


def test_an_app_killed_mid_run_reruns_no_checkpointed_step(stack: Stack) -> None:
    event_id = stack.server.send("cp/crash", {"s2_seconds": 30})
    run_id = wait_until(
        lambda: next((e["run_id"] for e in stack.app.executions() if e.get("step") == "s2"), None),
        timeout=20,
        what="s2 to start",
    )
    stack.app.kill()
    crashed_at = time.time()
    # s1's checkpoint was answered before s2 started: its result is committed.
    saved = {
        row[0]
        for row in stack.server.query("SELECT step_id FROM steps WHERE run_id = ?", (run_id,))
    }
    assert saved == {hash_step_id("s1")}
    try:
        stack.app.start_and_wait()  # same port: the server's retry reaches it again
        run = stack.server.wait_for_run(event_id, timeout=60)
    finally:
        if stack.app.proc is None or stack.app.proc.poll() is not None:
            stack.app.start_and_wait()
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == ["s1", "s2", "s3"]
    after = [e["step"] for e in ledger(stack, run_id, "step") if e["t"] > crashed_at]
    assert "s1" not in after, "s1 ran again after its result was committed"
    assert after == ["s2", "s3"]


def test_a_call_that_timed_out_at_a_proxy_is_stopped_by_a_conflict(tmp_path: Path) -> None:
    stack = Stack(tmp_path, APP, server_args=["--retry-interval", "1"], functions=FUNCTIONS)
    with GatewayTimeoutProxy(stack.app.port, answer_after=1.5) as proxy:
        # The app registers the proxy's address, so the server's calls go through it.
        stack.app.env["INNGEST_SERVE_ORIGIN"] = proxy.origin
        with stack:
            run = stack.server.wait_for_run(
                stack.server.send("cp/zombie", {"a_seconds": 5}), timeout=60
            )
            assert run["status"] == "Completed", stack.logs()
            counts = {name: 0 for name in "abcd"}
            for name, _ in steps_ran(stack, run["run_id"]):
                counts[name] += 1
            # "a" ran in the zombie and in the retry; the zombie stopped at its checkpoint.
            assert counts == {"a": 2, "b": 1, "c": 1, "d": 1}
            status, answer = wait_until(
                lambda: proxy.first_answer, timeout=30, what="the zombie's answer"
            )
            assert status == 400 and b"StaleDispatchError" in answer, answer
            # The app's own record: the zombie's answer is the only one that is not a 206.
            statuses = [e["status"] for e in ledger(stack, run["run_id"], "reply")]
            assert sorted(statuses) == [206] * (len(statuses) - 1) + [400]


def test_steps_come_back_in_the_answer_when_checkpoints_fail(tmp_path: Path) -> None:
    stack = Stack(tmp_path, APP, server_args=["--retry-interval", "1"], functions=FUNCTIONS)
    # The app's API calls go through a proxy that answers every checkpoint with a 503.
    with FailingPathProxy(stack.server.port, "/v1/checkpoint/", status=503) as proxy:
        stack.app.env["STEPWISE_TEST_CHECKPOINT_API"] = proxy.origin
        with stack:
            run = run_to_end(stack, "cp/three", {"n": 1})
            assert run["status"] == "Completed", stack.logs()
            assert run["output"] == [1, 2, {"sum": 3}]
            run_id = run["run_id"]
            assert steps_ran(stack, run_id) == [("a", 0), ("b", 0), ("c", 0)]
            # Each step's result, once its checkpoint failed, went back with its call.
            assert replies(stack, run_id) == [
                ["StepRun"],
                ["StepRun"],
                ["StepRun"],
                ["RunComplete"],
            ]
            # Each checkpoint was tried five times before its step went back with the answer.
            assert proxy.refused == 3 * 5
