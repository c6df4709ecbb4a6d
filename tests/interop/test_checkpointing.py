"""The official JS SDK 4.x checkpoints on our server as it does on Inngest's.

With a function id in every call, the SDK runs consecutive steps inside one call and saves
each through ``POST /v1/checkpoint/{run}/async``. The cases follow the SDK's own
integration tests (4.x reference §1, §7); the app (``js/checkpoint.mjs``) writes every
function entry, step execution and reply to a ledger, which is what these tests count.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwise.protocol import hash_step_id
from support.harness import REPO, AppProcess, Stack, wait_until
from support.proxies import GatewayTimeoutProxy

JS_DIR = REPO / "tests" / "interop" / "js"
APP = "checkpoint.mjs"
FUNCTIONS = 9


def require_node() -> None:
    if not (JS_DIR / "node_modules" / "inngest").is_dir():
        # `make test` installs it (npm ci); a missing install is a broken setup, not a skip.
        pytest.fail(f"the JS SDK is not installed: run `npm ci --prefix {JS_DIR}`")
    assert shutil.which("node"), "Node.js is required for the JS interop tests"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_node()
    tmp = tmp_path_factory.mktemp("checkpointing")
    with Stack(tmp, APP, server_args=["--retry-interval", "1"], functions=FUNCTIONS) as s:
        yield s


def ledger(app: AppProcess, run_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in app.executions() if e["kind"] == kind and e["run_id"] == run_id]


def entries(app: AppProcess, run_id: str) -> int:
    """How many call requests entered the function for this run."""
    return len(ledger(app, run_id, "enter"))


def steps_ran(app: AppProcess, run_id: str) -> list[tuple[str, int]]:
    return [(e["step"], e["attempt"]) for e in ledger(app, run_id, "step")]


def replies(app: AppProcess, run_id: str) -> list[list[str]]:
    """The ops of each answer to a call, in order (None for an answer that is not ops)."""
    return [[op["op"] for op in e["ops"] or []] for e in ledger(app, run_id, "reply")]


def run_to_end(stack: Stack, name: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    run = stack.server.wait_for_run(stack.server.send(name, data), timeout=60)
    run_id = run["run_id"]
    # The app records a reply once it is sent, which races with the run's end: wait until
    # every call that entered the function has its reply recorded.
    wait_until(
        lambda: 0 < entries(stack.app, run_id) == len(replies(stack.app, run_id)),
        timeout=10,
        what="the app's record of its last reply",
    )
    return run


def test_sequential_steps_run_in_one_call(stack: Stack) -> None:
    run = run_to_end(stack, "cp/sequential", {"n": 21})
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == [21, 42]
    run_id = run["run_id"]
    assert entries(stack.app, run_id) == 1
    assert replies(stack.app, run_id) == [["RunComplete"]]
    assert steps_ran(stack.app, run_id) == [("a", 0), ("b", 0)]
    # Both results were saved by checkpoints, in the order they completed.
    actions = stack.server.http.get(f"/v0/runs/{run_id}/actions").json()
    assert list(actions.items()) == [
        (hash_step_id("a"), {"data": 21}),
        (hash_step_id("b"), {"data": 42}),
    ]
    history = stack.server.http.get(f"/v1/runs/{run_id}/history").json()["data"]
    assert [(h["kind"], h["name"]) for h in history] == [
        ("RunStarted", None),
        ("StepCompleted", "a"),
        ("StepCompleted", "b"),
        ("RunCompleted", None),
    ]


@pytest.mark.parametrize(
    ("event", "calls", "answers"),
    [
        # No step: the function's return comes back as RunComplete, never as a plain 200.
        ("cp/runtime.stepless", 1, [["RunComplete"]]),
        # The runtime ran out after "before" was saved: "after" is planned, then discovery ends.
        ("cp/runtime.between", 3, [["StepPlanned"], ["StepRun"], ["RunComplete"]]),
        # Nothing left to plan after the runtime ran out: the same call ends the run.
        ("cp/runtime.after", 1, [["RunComplete"]]),
    ],
)
def test_max_runtime(stack: Stack, event: str, calls: int, answers: list[list[str]]) -> None:
    run = run_to_end(stack, event)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == "done"
    assert entries(stack.app, run["run_id"]) == calls
    assert replies(stack.app, run["run_id"]) == answers


def test_a_step_that_succeeds_on_retry_leaves_the_next_a_full_budget(stack: Stack) -> None:
    run = run_to_end(stack, "cp/retry")
    assert run["status"] == "Failed", stack.logs()
    ran = steps_ran(stack.app, run["run_id"])
    assert [a for s, a in ran if s == "pre"] == [0]  # saved by checkpoint, never run again
    assert [a for s, a in ran if s == "a"] == [0, 1]
    # A retried call hands its result back; the next call starts again at attempt 0.
    assert [a for s, a in ran if s == "b"] == [0, 1]
    # pre and a's first try | a's retry | b | b's retry (StepFailed) | the error surfaces.
    assert entries(stack.app, run["run_id"]) == 5


def test_checkpointing_resumes_after_parallel_steps(stack: Stack) -> None:
    run = run_to_end(stack, "cp/parallel")
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == "done"
    run_id = run["run_id"]
    names = [s for s, _ in steps_ran(stack.app, run_id)]
    expected = ["seq-1", "seq-2", "par-1", "par-2", "after-1", "after-2", "after-3"]
    assert sorted(names) == sorted(expected)  # each exactly once
    answered = [
        op
        for e in ledger(stack.app, run_id, "reply")
        for op in e["ops"] or []
        if op["op"] == "StepPlanned"
    ]
    assert sorted(op["name"] for op in answered) == ["par-1", "par-2"]  # never an after-*
    assert ["RunComplete"] in replies(stack.app, run_id)
    # seq-1 and seq-2, then par-1 and par-2 planned | par-1 | par-2 | after-1..3 and the end.
    assert entries(stack.app, run_id) == 4


def test_middleware_sees_two_calls_that_carry_the_job_and_request(stack: Stack) -> None:
    run = run_to_end(stack, "cp/encoding")
    # The middleware cannot encode the function's undefined return value (as in the SDK's test).
    assert run["status"] == "Failed", stack.logs()
    inputs = ledger(stack.app, run["run_id"], "fn_input")
    assert len(inputs) == 2  # step-1 and step-2 checkpointed in the first call, then the sleep
    for seen in inputs:
        assert (seen["attempt"], seen["max_attempts"]) == (0, 1)
        assert (seen["job_id_type"], seen["request_id_type"]) == ("string", "string")
    assert inputs[0]["steps"] == {}
    marker = "__INNGEST_BASE64_SERIALIZER__"
    assert inputs[1]["steps"] == {
        hash_step_id("sleep"): {"type": "data", "data": None},
        hash_step_id("step-1"): {
            "type": "data",
            "data": {marker: True, "value": "eyJtZXNzYWdlIjoiaGVsbG8iLCJjb3VudCI6NDJ9"},
        },
        hash_step_id("step-2"): {
            "type": "data",
            "data": {marker: True, "value": "WyJhIiwiYiIsImMiXQ=="},
        },
    }


# ---- a zombie call: dispatchValidation.test.ts ----------------------------------------------


def test_a_call_that_timed_out_at_a_proxy_is_stopped_by_a_conflict(tmp_path: Path) -> None:
    require_node()
    stack = Stack(tmp_path, APP, server_args=["--retry-interval", "1"], functions=FUNCTIONS)
    with GatewayTimeoutProxy(stack.app.port) as proxy:
        # The app registers the proxy's address, so the server's calls go through it.
        stack.app.env["STEPWISE_TEST_SERVE_ORIGIN"] = proxy.origin
        with stack:
            run = stack.server.wait_for_run(stack.server.send("cp/zombie"), timeout=80)
            assert run["status"] == "Completed", stack.logs()
            counts = {name: 0 for name in "abcd"}
            for name, _ in steps_ran(stack.app, run["run_id"]):
                counts[name] += 1
            # "a" ran in the zombie and in the retry; the zombie stopped at its checkpoint.
            assert counts == {"a": 2, "b": 1, "c": 1, "d": 1}
            status, answer = wait_until(
                lambda: proxy.first_answer, timeout=30, what="the zombie's answer"
            )
            assert status == 400 and b"StaleDispatchError" in answer, answer


# ---- a server crash between two checkpoints -------------------------------------------------


def committed_steps(db: Path, run_id: str) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT step_id FROM steps WHERE run_id = ?", (run_id,)).fetchall()
    finally:
        conn.close()
    return {r[0] for r in rows}


def test_a_server_killed_after_a_checkpoint_reruns_no_saved_step(tmp_path: Path) -> None:
    require_node()
    stack = Stack(tmp_path, APP, server_args=["--retry-interval", "1"], functions=FUNCTIONS)
    # The server kills itself (SIGKILL) right after the first checkpoint is committed.
    stack.server.env["STEPWISE_FAULTS"] = "checkpoint.saved=crash"
    with stack:
        event_id = stack.server.send("cp/crash")
        proc = stack.server.proc
        assert proc is not None
        wait_until(lambda: proc.poll() is not None, timeout=30, what="the crash")
        crashed_at = time.time()
        # The API is down: the run and its saved steps are read from the database file.
        conn = sqlite3.connect(stack.server.db)
        try:
            [(run_id,)] = conn.execute("SELECT id FROM runs").fetchall()
        finally:
            conn.close()
        assert committed_steps(stack.server.db, run_id) == {hash_step_id("s1")}

        del stack.server.env["STEPWISE_FAULTS"]
        stack.server.start_and_wait()
        run = stack.server.wait_for_run(event_id, timeout=60)
        assert run["status"] == "Completed", stack.logs()
        assert run["output"] == ["s1", "s2", "s3"]
        ran = ledger(stack.app, run_id, "step")
        assert not [e for e in ran if e["step"] == "s1" and e["t"] > crashed_at], (
            "s1 ran again after its result was committed"
        )
        # The call cut off by the crash waited for its checkpoint, so s2 had not started;
        # its late retries of that checkpoint (if any reached the new server) got a 409.
        assert [e["step"] for e in ran] == ["s1", "s2", "s3"]
