"""A failed run's result is exactly what the reference server gives, for both official SDKs.

The reference server stores a failed run's output as the SDK's error body, byte for byte
as parsed JSON: nothing added (no ``error`` field of ours), nothing dropped (a
``"stack": null`` stays). Its ``inngest/function.failed`` event carries a different object,
``data.error = {error, name, message, stack}``: ``error`` is the reason the reference
gave the attempt up, ``"invalid status code: <status>"``, or ``"NonRetriableError"`` when
the SDK said ``X-Inngest-No-Retry: true`` (Go ``httpdriver``/``httpv2`` set the attempt's
error so; ``DriverResponse.StandardError`` keeps only those four keys, plus ``cause``).

Expected bodies come from the SDKs' own suites: inngest-py
``tests/test_inngest/test_function/cases/*.py`` (compares ``run.output`` with a dict),
inngest-js ``InngestCommHandler`` result handlers (``__serialized``, step-not-found).
Each test checks two things apart: that the SDK sent that body (the app recorded its
answer) and that the run's output is that very body.
"""

from __future__ import annotations

import hashlib
from typing import Any

from support.exchanges import calls, final_answer, ops, summary, trigger
from support.harness import Stack, wait_until

FAILED = "inngest/function.failed"
FINISHED = "inngest/function.finished"


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def failed_run(stack: Stack, name: str, **data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``exact/<name>`` to its failure: the run, and the app's last answer in it."""
    run = trigger(stack, name, **data)
    assert run["status"] == "Failed", stack.logs()
    return run, final_answer(stack, run["run_id"])


def with_stack_of(body: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """``expected`` plus the body's own traceback, once that is known to be a string."""
    assert isinstance(body.get("stack"), str), body
    return {**expected, "stack": body["stack"]}


def failed_event_data(stack: Stack, run_id: str, name: str = FAILED) -> dict[str, Any]:
    """The data of the one ``inngest/function.failed`` (or ``name``) event reporting ``run_id``."""
    events = [e for e in stack.server.events(name) if e["data"].get("run_id") == run_id]
    assert len(events) == 1, events
    data: dict[str, Any] = events[0]["data"]
    return data


def on_failure_record(stack: Stack, run_id: str) -> dict[str, Any]:
    """What the function's failure handler received (the app records it), once it ran."""
    received: list[dict[str, Any]] = wait_until(
        lambda: stack.app.ledger_of("on_failure", run_id=run_id),
        timeout=20,
        what=f"the failure handler of run {run_id}",
    )
    assert len(received) == 1, received
    return received[0]


def assert_failure_reported(
    stack: Stack, run_id: str, function_id: str, token: str, expected_error: dict[str, Any]
) -> dict[str, Any]:
    """``function.failed`` and ``.finished`` carry ``expected_error``, and the function's
    failure handler, a run of its own that completes, receives the same; what it got."""
    data = failed_event_data(stack, run_id)
    assert data["error"] == expected_error
    assert data["function_id"] == function_id
    assert data["event"]["data"] == {"token": token}
    assert failed_event_data(stack, run_id, FINISHED)["error"] == expected_error
    received = on_failure_record(stack, run_id)
    assert received["error"] == expected_error
    assert received["function_id"] == function_id
    assert received["event_data"] == {"token": token}
    assert received["handler_run_id"] != run_id
    assert stack.server.wait_for_run_end(received["handler_run_id"])["status"] == "Completed"
    return received


# ---- the Python SDK ------------------------------------------------------------------------


def test_py_non_retriable_error_output(exact_py: Stack) -> None:
    """inngest-py ``non_retriable_error.py``: a NonRetriableError raised in a step."""
    run, answer = failed_run(exact_py, "non-retriable")
    expected = {"code": "non_retriable_error", "message": "foo", "name": "NonRetriableError"}
    assert answer["body"] == with_stack_of(answer["body"], expected)
    assert run["output"] == answer["body"]
    # Not retried although retries=1: one request, at attempt 0.
    assert [c["attempt"] for c in calls(exact_py, run["run_id"])] == [0]


def test_py_error_raised_instead_of_a_step_error_output(exact_py: Stack) -> None:
    """inngest-py ``change_step_error.py``: user code catches a StepError, raises its own."""
    run, answer = failed_run(exact_py, "change-step-error")
    expected = {"code": "unknown", "message": "I am new", "name": "MyError"}
    assert answer["body"] == with_stack_of(answer["body"], expected)
    assert run["output"] == answer["body"]


def test_py_failed_function_output(exact_py: Stack) -> None:
    """inngest-py ``on_failure.py``: the failed run's own output."""
    run, answer = failed_run(exact_py, "on-failure")
    expected = {"code": "unknown", "message": "intentional failure", "name": "MyError"}
    assert answer["body"] == with_stack_of(answer["body"], expected)
    assert run["output"] == answer["body"]


def test_py_failed_event_and_on_failure_handler(exact_py: Stack) -> None:
    """inngest-py ``on_failure.py``: the failed event's ``data.error``, as the handler gets it.

    A retriable 500 with no attempt left (retries=0): the reference's reason is the status
    code, and the error object has the four standard keys only (no ``code``).
    """
    run, answer = failed_run(exact_py, "on-failure", token="on-failure")
    assert (answer["status"], answer["no_retry"]) == (500, None)
    expected_error = {
        "error": "invalid status code: 500",
        "message": "intentional failure",
        "name": "MyError",
        "stack": answer["body"]["stack"],
    }
    received = assert_failure_reported(
        exact_py, run["run_id"], "exact-py-on-failure", "on-failure", expected_error
    )
    assert received["attempt"] == 0


def test_py_failed_event_of_a_no_retry_answer(exact_py: Stack) -> None:
    """When the SDK said ``X-Inngest-No-Retry: true`` the reference's reason is
    ``"NonRetriableError"`` (Go drivers overwrite the status-code reason with it)."""
    run, answer = failed_run(exact_py, "non-retriable")
    assert (answer["status"], answer["no_retry"]) == (500, "true")
    assert failed_event_data(exact_py, run["run_id"])["error"] == {
        "error": "NonRetriableError",
        "message": "foo",
        "name": "NonRetriableError",
        "stack": answer["body"]["stack"],
    }


def test_py_nested_step_output(exact_py: Stack) -> None:
    """inngest-py ``nested_step_run.py``: a step.run inside a step.run fails the run at once."""
    run, answer = failed_run(exact_py, "nested-step")
    assert answer["body"] == {
        "code": "step_errored",
        "message": "Nested steps are not supported.",
        "name": "CodedError",
        "stack": "inngest._internal.errors.CodedError: Nested steps are not supported.\n",
    }
    assert run["output"] == answer["body"]
    # step_1 ran once (retries=5, yet nothing retried); step_2 and what follows never did.
    steps = [e["step"] for e in exact_py.app.ledger_of("step", run_id=run["run_id"])]
    assert steps == ["step_1"]


def test_py_unserializable_step_output(exact_py: Stack) -> None:
    """inngest-py ``unserializable_step_output.py``: the SDK's body has no ``stack`` key."""
    run, answer = failed_run(exact_py, "unserializable")
    assert answer["body"] == {
        "code": "output_unserializable",
        "message": '"step_1" returned unserializable data',
        "name": "OutputUnserializableError",
    }
    assert run["output"] == answer["body"]


def test_py_invoke_timeout_output(exact_py: Stack) -> None:
    """inngest-py ``invoke_timeout.py``: the timed-out invoke's error, raised, with
    ``"stack": null`` kept."""
    run, answer = failed_run(exact_py, "invoke-timeout")
    # The SDK builds this from the memo the server gives a timed-out invoke step (name
    # InngestInvokeTimeoutError, that message, no stack): a wrong memo changes it too.
    assert answer["body"] == {
        "code": "step_errored",
        "message": "Timed out waiting for invoked function to complete",
        "name": "InngestInvokeTimeoutError",
        "stack": None,
    }
    assert run["output"] == answer["body"]


def test_py_unexpected_step_during_targeting(exact_py: Stack) -> None:
    """inngest-py ``unexpected_step_during_targeting.py``: a targeted call meets a new step."""
    run, answer = failed_run(exact_py, "unexpected-step")
    run_calls = calls(exact_py, run["run_id"])
    # The discovery planned both parallel steps; each targeted call then met "unexpected",
    # and the first such answer failed the run (retries=0): the other may never be called.
    assert ops(run_calls[0]) == ["StepPlanned:parallel_1", "StepPlanned:parallel_2"]
    targeted = [c["step"] for c in run_calls[1:]]
    assert targeted and set(targeted) <= {sha1("parallel_1"), sha1("parallel_2")}
    assert len(set(targeted)) == len(targeted), summary(run_calls)
    assert all(c["body"] == answer["body"] for c in run_calls[1:]), summary(run_calls)
    assert answer["body"] == {
        "code": "step_unexpected",
        "message": 'found step "unexpected" when targeting a different step',
        "name": "StepUnexpectedError",
        "stack": None,
    }
    assert run["output"] == answer["body"]
    # No step body ran: not the planned ones, not the unexpected one.
    assert exact_py.app.ledger_of("step", run_id=run["run_id"]) == []


def test_py_parallel_step_that_disappears(exact_py: Stack) -> None:
    """inngest-py ``parallel_step_disappears.py``: step 1c is planned, then gone when targeted."""
    run, _ = failed_run(exact_py, "parallel-disappears")
    run_calls = calls(exact_py, run["run_id"])
    targeted_1c = [c for c in run_calls if c["step"] == sha1("1c")]
    assert len(targeted_1c) == 1, summary(run_calls)
    # Targeting 1c, the SDK skips 1a and 1b (done or not), leaves the group, meets "after".
    body = targeted_1c[0]["body"]
    assert body == {
        "code": "step_unexpected",
        "message": 'found step "after" when targeting a different step',
        "name": "StepUnexpectedError",
        "stack": None,
    }
    assert run["output"] == body


# ---- the JS SDK 4.x -------------------------------------------------------------------------


def test_js_non_retriable_error_output(exact_js: Stack) -> None:
    """NonRetriableError thrown by the function: 400 + no-retry, its serialized body."""
    run, answer = failed_run(exact_js, "non-retriable")
    assert (answer["status"], answer["no_retry"]) == (400, "true")
    expected = {"name": "NonRetriableError", "message": "no way", "__serialized": True}
    assert answer["body"] == with_stack_of(answer["body"], expected)
    assert run["output"] == answer["body"]
    assert [c["attempt"] for c in calls(exact_js, run["run_id"])] == [0]


def test_js_failed_event_and_on_failure_handler(exact_js: Stack) -> None:
    """The failed event's ``data.error`` after a no-retry 400: reason "NonRetriableError",
    the four standard keys (``__serialized`` is not one); ``onFailure`` gets the same."""
    run, answer = failed_run(exact_js, "non-retriable", token="js-non-retriable")
    expected_error = {
        "error": "NonRetriableError",
        "message": "no way",
        "name": "NonRetriableError",
        "stack": answer["body"]["stack"],
    }
    received = assert_failure_reported(
        exact_js, run["run_id"], "exact-js-non-retriable", "js-non-retriable", expected_error
    )
    assert received["handed"] == {"name": "NonRetriableError", "message": "no way"}


def test_js_uncaught_step_error_output(exact_js: Stack) -> None:
    """A step that fails on its last attempt, not caught: the SDK answers the step's error."""
    run, answer = failed_run(exact_js, "step-error")
    run_calls = calls(exact_js, run["run_id"])
    # retries=1: "a fails" errs at attempt 0 (StepError, retried) and 1 (StepFailed, final);
    # the next discovery rethrows it uncaught: 400, no-retry.
    assert [(c["attempt"], c["status"]) for c in run_calls] == [(0, 206), (1, 206), (0, 400)], (
        summary(run_calls)
    )
    assert [ops(c) for c in run_calls[:2]] == [["StepError:a fails"], ["StepFailed:a fails"]]
    assert answer["no_retry"] == "true"
    expected = {"name": "Error", "message": "A failed!", "__serialized": True}
    assert answer["body"] == with_stack_of(answer["body"], expected)
    assert run["output"] == answer["body"]
    steps = [e["step"] for e in exact_js.app.ledger_of("step", run_id=run["run_id"])]
    assert steps == ["a fails", "a fails"]


def test_js_targeted_step_that_disappears(exact_js: Stack) -> None:
    """Step p3 is planned, then gone: the SDK answers 500 "Could not find step", retried.

    The SDK waits 10 s for the targeted step before it answers, so this test takes ~22 s.
    """
    run, answer = failed_run(exact_js, "disappearing-step", timeout=90)
    run_calls = calls(exact_js, run["run_id"])
    targeted_p3 = [c for c in run_calls if c["step"] == sha1("p3")]
    # Retriable (no-retry false) and retried: one call per attempt, retries=1.
    assert [(c["attempt"], c["status"], c["no_retry"]) for c in targeted_p3] == [
        (0, 500, "false"),
        (1, 500, "false"),
    ], summary(run_calls)
    assert answer == targeted_p3[-1], summary(run_calls)
    # By the retry p1 and p2 are done, so the one new step the SDK finds is "after".
    after = sha1("after")
    expected = {
        "error": f'Could not find step "{sha1("p3")}" to run; timed out. '
        f"Found new steps: \nafter ({after}).",
        "requestedStep": sha1("p3"),
        "foundSteps": [{"id": after, "name": "after", "displayName": "after"}],
        "totalFoundSteps": 1,
    }
    assert answer["body"] == expected
    assert run["output"] == expected
