"""Our server calls an app as many times per run as the reference server does.

Every number here is the reference's, derived from the protocol (``inngest-protocol.md``
§5.2 immediate execution, §5.3 fan-in, §5.5 worked example; ``inngest-4x-features.md`` §1
checkpointing, §7 "Encoding") and from the SDKs' own suites; the derivation stands by each
assertion. The recording apps count call requests at the HTTP level, and the SDK middleware
hook that runs once per request (``transform_input`` / ``transformFunctionInput``) must
fire exactly as often.

Two protocol facts carry most derivations:

* The Python SDK and the JS SDK 4.x answer with request version 2. With version 2 the
  reference joins a parallel batch (every planned step and every async op of one answer)
  and sends exactly **one** discovery call once all of it is done; that call has
  ``disable_immediate_execution: false`` again (ForceStepPlan is reset when the batch drains).
* The JS SDK 4.x checkpoints by default when the call carries a non-empty ``ctx.fn_id``,
  as the reference's does: in a discovery call it runs consecutive ``step.run``s in that
  same request, posting each result to ``/v1/checkpoint/{run}/async``, and ends with
  ``RunComplete``. Targeted calls and calls with ``disable_immediate_execution`` do not
  checkpoint.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from support.exchanges import (
    calls,
    child_run_id,
    hooks,
    ops,
    send_until_run_ends,
    summary,
    trigger,
)
from support.harness import Stack, wait_until


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def assert_requests(stack: Stack, run_id: str, expected: int) -> list[dict[str, Any]]:
    """The run cost its app ``expected`` requests, and the per-request hook fired as often."""
    run_calls = calls(stack, run_id)
    assert len(run_calls) == expected, "\n".join(summary(run_calls))
    assert len(hooks(stack, run_id)) == expected, "\n".join(summary(run_calls))
    return run_calls


def completed(stack: Stack, name: str, **data: Any) -> dict[str, Any]:
    run = trigger(stack, name, **data)
    assert run["status"] == "Completed", stack.logs()
    return run


def wait_fulfilled(stack: Stack, fn: str) -> dict[str, Any]:
    """Start ``exact/wait``, and once the app has answered with its wait, send the event."""
    token = uuid.uuid4().hex
    event_id = stack.server.send("exact/wait", {"token": token})
    run_id = wait_until(
        lambda: (stack.server.runs(event_id) or [{}])[0].get("run_id"),
        timeout=20,
        what="the wait run",
    )
    wait_until(
        lambda: any(ops(c) == ["WaitForEvent:wait"] for c in calls(stack, run_id)),
        timeout=20,
        what="the app's WaitForEvent answer",
    )
    run = send_until_run_ends(stack, run_id, "exact/wake", {"token": token})
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"token": token}
    assert {c["fn"] for c in calls(stack, run_id)} == {fn}
    return run


# ---- both SDKs, the same flows -------------------------------------------------------------


@pytest.mark.parametrize("sdk", ["py", "js"])
def test_sleep(sdk: str, request: pytest.FixtureRequest) -> None:
    stack: Stack = request.getfixturevalue(f"exact_{sdk}")
    run = completed(stack, "sleep")
    assert run["output"] == "woke"
    # A discovery answers Sleep; when it is due one discovery returns: 2.
    run_calls = assert_requests(stack, run["run_id"], 2)
    assert ops(run_calls[0]) == ["Sleep:nap"]


@pytest.mark.parametrize("sdk", ["py", "js"])
def test_wait_for_event_fulfilled(sdk: str, request: pytest.FixtureRequest) -> None:
    stack: Stack = request.getfixturevalue(f"exact_{sdk}")
    run = wait_fulfilled(stack, f"exact-{sdk}-wait")
    # A discovery answers WaitForEvent; the matching event resumes one discovery: 2.
    assert_requests(stack, run["run_id"], 2)


# The child's requests: Python runs "double" at once in one discovery and returns in
# another (2); JS runs it by checkpointing and answers RunComplete in one request (1).
@pytest.mark.parametrize(("sdk", "child_requests"), [("py", 2), ("js", 1)])
def test_invoke(sdk: str, child_requests: int, request: pytest.FixtureRequest) -> None:
    stack: Stack = request.getfixturevalue(f"exact_{sdk}")
    run = completed(stack, "invoke-parent")
    assert run["output"] == 42
    # Parent: a discovery answers InvokeFunction; the child's end resumes one discovery: 2.
    assert_requests(stack, run["run_id"], 2)
    # The child is a run of its own, counted apart.
    child = child_run_id(stack, f"exact-{sdk}-invoke-child", run["run_id"])
    assert_requests(stack, child, child_requests)


# ---- the Python SDK -------------------------------------------------------------------------


def test_py_two_steps_then_return(exact_py: Stack) -> None:
    run = completed(exact_py, "two-steps")
    assert run["output"] == [1, 2]
    # §5.5: a discovery runs "a" at once (one new step.run), the next runs "b", the third
    # returns: 3.
    run_calls = assert_requests(exact_py, run["run_id"], 3)
    assert [ops(c) for c in run_calls[:2]] == [["StepRun:a"], ["StepRun:b"]]


def test_py_parallel_group_then_one_more_step(exact_py: Stack) -> None:
    run = completed(exact_py, "parallel-then-step")
    assert run["output"] == ["p1", "p2", "after"]
    # 1 discovery plans p1, p2; 2 targeted calls run them; the batch drains into 1
    # discovery (§5.3), no longer in planning mode, which runs "after" at once (§5.2);
    # 1 more returns: 5.
    run_calls = assert_requests(exact_py, run["run_id"], 5)
    assert ops(run_calls[0]) == ["StepPlanned:p1", "StepPlanned:p2"]
    assert ops(run_calls[3]) == ["StepRun:after"]
    assert run_calls[3]["disable_immediate_execution"] is False
    steps = sorted(e["step"] for e in exact_py.app.ledger_of("step", run_id=run["run_id"]))
    assert steps == ["after", "p1", "p2"]


def test_py_parallel_race(exact_py: Stack) -> None:
    run = completed(exact_py, "race")
    # inngest-py ``parallel_mode_race.py`` asserts 9: in race mode every finished step gets
    # its own discovery (§5.3), so 1 discovery plans a.1 and b.1, 4 targeted calls run the
    # 4 steps, and 4 discoveries follow them (after a.1 plans a.2; after a.2 re-plans b.1,
    # still running, which the reference does not run twice; after b.1 plans b.2; after b.2
    # returns).
    assert_requests(exact_py, run["run_id"], 9)
    steps = [e["step"] for e in exact_py.app.ledger_of("step", run_id=run["run_id"])]
    assert steps == ["a.1", "a.2", "b.1", "b.2"]


def test_py_parallel_invoke_steps_and_send_event_then_a_step(exact_py: Stack) -> None:
    """The issue's example: it must cost the app 6 requests."""
    run = completed(exact_py, "issue-example")
    assert run["output"] == [4, "r1", "r2", 1, "after"]
    # 1 discovery answers [InvokeFunction, StepPlanned r1, r2, send]; 3 targeted calls run
    # r1, r2 and send; the invoke is part of the batch, so the batch drains (§5.3) only when
    # the child has ended (it takes 1 s on purpose): 1 discovery, out of planning mode, runs
    # "after" at once; 1 more returns: 6.
    run_calls = assert_requests(exact_py, run["run_id"], 6)
    assert ops(run_calls[0]) == [
        "InvokeFunction:call-child",
        "StepPlanned:r1",
        "StepPlanned:r2",
        "StepPlanned:send",
    ]
    assert sorted(c["step"] for c in run_calls[1:4]) == sorted(
        [sha1("r1"), sha1("r2"), sha1("send")]
    )
    assert ops(run_calls[4]) == ["StepRun:after"]
    child = child_run_id(exact_py, "exact-py-invoke-child", run["run_id"])
    assert_requests(exact_py, child, 2)


# ---- the JS SDK 4.x -----------------------------------------------------------------------------


def test_js_two_steps_then_return(exact_js: Stack) -> None:
    run = completed(exact_js, "two-steps")
    assert run["output"] == [1, 2]
    # Checkpointing (4x §1.5): one request runs "a" and "b", checkpointing each, and ends
    # with RunComplete: 1.
    run_calls = assert_requests(exact_js, run["run_id"], 1)
    assert ops(run_calls[0])[-1].startswith("RunComplete")


def test_js_middleware_hooks_of_two_steps_and_a_sleep(exact_js: Stack) -> None:
    """inngest-js ``middleware/useCases/encoding.test.ts``: step-1, step-2, sleep."""
    run = completed(exact_js, "steps-then-sleep")
    assert run["output"] == {"one": {"message": "hello", "count": 42}, "two": ["a", "b", "c"]}
    seen = hooks(exact_js, run["run_id"])
    # What every call's hook sees: attempt 0 of 1 (retries=0), and ctx.jobId and
    # ctx.requestId as strings (the SDK reads them from x-inngest-job-id, x-request-id).
    assert {(h["attempt"], h["max_attempts"]) for h in seen} == {(0, 1)}
    assert {(h["job_id_type"], h["request_id_type"]) for h in seen} == {("string", "string")}
    # Request 1 runs step-1 and step-2 by checkpointing and answers Sleep; request 2 comes
    # after the sleep and completes: exactly 2 transformFunctionInput calls.
    assert_requests(exact_js, run["run_id"], 2)
    # The second sees exactly the two step outputs and the sleep's memo.
    assert [h["steps"] for h in seen] == [
        [],
        sorted([sha1("step-1"), sha1("step-2"), sha1("sleep")]),
    ]


def test_js_parallel_group_then_one_more_step(exact_js: Stack) -> None:
    run = completed(exact_js, "parallel-then-step")
    assert run["output"] == ["p1", "p2", "after"]
    # 1 discovery plans p1, p2; 2 targeted calls (no checkpointing there) run them; the
    # batch drains into 1 discovery with disable_immediate_execution false (4x §1.7), which
    # runs "after" by checkpointing and answers RunComplete: 4.
    run_calls = assert_requests(exact_js, run["run_id"], 4)
    assert ops(run_calls[0]) == ["StepPlanned:p1", "StepPlanned:p2"]
    # resumeAfterParallelism.test.ts: "after" is never planned.
    assert not any("StepPlanned:after" in ops(c) for c in run_calls)


def test_js_parallel_invoke_steps_and_send_event_then_a_step(exact_js: Stack) -> None:
    """The issue's example on the JS SDK: 5 requests."""
    run = completed(exact_js, "issue-example")
    assert run["output"] == [4, "r1", "r2", 1, "after"]
    # 1 discovery answers [InvokeFunction, StepPlanned r1, r2, sendEvent]; 3 targeted calls;
    # the batch (invoke included) drains into 1 discovery, which runs "after" by
    # checkpointing and answers RunComplete: 5.
    run_calls = assert_requests(exact_js, run["run_id"], 5)
    assert ops(run_calls[0])[0] == "InvokeFunction:call-child"
    assert sorted(ops(run_calls[0])[1:]) == ["StepPlanned:r1", "StepPlanned:r2", "StepPlanned:send"]
    child = child_run_id(exact_js, "exact-js-invoke-child", run["run_id"])
    assert_requests(exact_js, child, 1)
