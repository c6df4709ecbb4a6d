"""The official JS SDK 4.x's defers, run and step metadata, and sessions on our server.

The cases follow the SDK's own integration tests (4.x reference §3-§5: defer/misc,
defer/abort, traces/stepMetadata, scoring/primitive, sessions). The app (``js/js4x.mjs``)
writes what each function saw to a ledger; the tests read it, and the runs, events and
histories through the REST API.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from stepwise.protocol import hash_step_id
from support.harness import REPO, Stack, wait_until
from support.sessions import BATCH_METAS, SHARED, run_a_batch

JS_DIR = REPO / "tests" / "interop" / "js"
APP = "js4x.mjs"
FUNCTIONS = 12


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not (JS_DIR / "node_modules" / "inngest").is_dir():
        # `make test` installs it (npm ci); a missing install is a broken setup, not a skip.
        pytest.fail(f"the JS SDK is not installed: run `npm ci --prefix {JS_DIR}`")
    assert shutil.which("node"), "Node.js is required for the JS interop tests"
    tmp = tmp_path_factory.mktemp("js4x")
    with Stack(tmp, APP, server_args=["--retry-interval", "1"], functions=FUNCTIONS) as s:
        yield s


def deferred_of(stack: Stack, parent_run_id: str) -> list[dict[str, Any]]:
    """The deferred runs (as the app saw them) that ``parent_run_id`` started."""
    return [
        e
        for e in stack.app.ledger_of("deferred")
        if any(p.get("runId") == parent_run_id for p in e["parents"])
    ]


def schedule_events(stack: Stack, parent_run_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in stack.server.events("inngest/deferred.schedule")
        if e["data"]["_inngest"]["parent_run_id"] == parent_run_id
    ]


def wait_for_deferred(stack: Stack, parent_run_id: str) -> list[dict[str, Any]]:
    """Once the deferred events of a parent that ended have each run their function."""
    expected = len(schedule_events(stack, parent_run_id))
    assert expected, f"run {parent_run_id} sent no deferred event"
    found: list[dict[str, Any]] = wait_until(
        lambda: (
            len(deferred_of(stack, parent_run_id)) >= expected and deferred_of(stack, parent_run_id)
        ),
        timeout=30,
        what="the deferred runs",
    )
    return found


# ---- defers --------------------------------------------------------------------------------


def test_a_defer_fires_once_after_the_parent_completes(stack: Stack) -> None:
    parent = stack.server.wait_for_run(stack.server.send("js4x/defer.complete", {"n": 21}))
    assert parent["status"] == "Completed", stack.logs()
    assert parent["output"] == 42
    run_id = parent["run_id"]
    # The function ran again after its sleep, meeting the defer again: the server's
    # `defers` in the call told the SDK it had it, so one deferred run, not two.
    assert len(stack.app.ledger_of("enter", run_id=run_id)) >= 2
    assert len(schedule_events(stack, run_id)) == 1
    [deferred] = wait_for_deferred(stack, run_id)
    assert deferred["data"] == {"from": "complete", "n": 21}
    assert deferred["parents"] == [{"fnSlug": "js4x-defer-complete", "runId": run_id}]
    kinds = [h["kind"] for h in stack.server.history(run_id) if h["kind"].startswith("Defer")]
    assert kinds == ["DeferAdded", "DeferStarted"]


def test_a_defer_saved_by_a_checkpoint_fires_when_the_same_call_completes_the_run(
    stack: Stack,
) -> None:
    parent = stack.server.wait_for_run(stack.server.send("js4x/defer.checkpointed"))
    assert parent["status"] == "Completed", stack.logs()
    assert parent["output"] == "stepped"
    # One call: the step and the defer went out in a checkpoint, then RunComplete alone.
    replies = [r["ops"] for r in stack.app.ledger_of("reply", fn="js4x-defer-checkpointed")]
    assert replies == [["RunComplete"]]
    [deferred] = wait_for_deferred(stack, parent["run_id"])
    assert deferred["data"] == {"from": "checkpointed"}


@pytest.mark.parametrize("function", ["defer-fail", "defer-fail-classic"])
def test_a_defer_fires_after_the_parent_fails(stack: Stack, function: str) -> None:
    # With checkpointing the defer goes out in a checkpoint before the error; without, the
    # answer is [DeferAdd, StepFailed] for the function itself.
    parent = stack.server.wait_for_run(stack.server.send(f"js4x/{function}"))
    assert parent["status"] == "Failed", stack.logs()
    assert parent["output"]["message"] == "oh no"
    [deferred] = wait_for_deferred(stack, parent["run_id"])
    assert deferred["data"] == {"from": function}
    if function == "defer-fail-classic":
        replies = [r["ops"] for r in stack.app.ledger_of("reply", fn="js4x-defer-fail-classic")]
        assert ["DeferAdd", "StepFailed"] in replies


def test_aborted_defers_never_start(stack: Stack) -> None:
    parent = stack.server.wait_for_run(stack.server.send("js4x/defer.abort"))
    assert parent["status"] == "Completed", stack.logs()
    run_id = parent["run_id"]
    assert [e["data"]["from"] for e in schedule_events(stack, run_id)] == ["kept"]
    [kept] = wait_for_deferred(stack, run_id)
    assert kept["data"] == {"from": "kept"}
    history = stack.server.history(run_id)
    aborted = {h["name"] for h in history if h["kind"] == "DeferAborted"}
    assert aborted == {"aborted-now", "aborted-later", "aborted-in-step"}
    assert [h["name"] for h in history if h["kind"] == "DeferStarted"] == ["kept"]


# ---- metadata --------------------------------------------------------------------------------


def metadata_of(stack: Stack, run_id: str) -> list[tuple[str | None, str, str, Any]]:
    return [
        (h["step_id"], h["metadata"]["scope"], h["metadata"]["kind"], h["metadata"]["values"])
        for h in stack.server.history(run_id)
        if h["kind"] == "Metadata"
    ]


def test_metadata_written_by_a_step_and_through_the_api_reads_back(stack: Stack) -> None:
    run = stack.server.wait_for_run(stack.server.send("js4x/metadata"))
    assert run["status"] == "Completed", stack.logs()
    run_id = run["run_id"]
    work = hash_step_id("work")
    on_the_step = [
        (work, "step", "userland.default", {"status": "ok", "rows": 3}),
        (work, "run", "userland.progress", {"phase": "scored"}),
        (work, "step", "inngest.score", {"quality": {"value": 0.9}}),
    ]
    assert sorted(metadata_of(stack, run_id), key=repr) == sorted(on_the_step, key=repr)

    writer = stack.server.wait_for_run(
        stack.server.send("js4x/metadata.writer", {"target": run_id})
    )
    # The SDK got a 2xx for each write, the one for a step the run never had included.
    assert writer["status"] == "Completed", stack.logs()
    through_the_api = [
        (None, "run", "userland.review", {"by": "api"}),
        (hash_step_id("other"), "step", "userland.default", {"note": "fine"}),
        (None, "run", "inngest.score", {"api-score": {"value": True}}),
    ]
    assert metadata_of(stack, run_id)[len(on_the_step) :] == through_the_api


# ---- sessions --------------------------------------------------------------------------------


def test_sessions_go_on_through_send_invoke_and_defers(stack: Stack) -> None:
    event_id = stack.server.send(
        "js4x/sessions.parent", {"tag": "p1"}, meta={"sessions": {"org": "acme", "conv": 42}}
    )
    parent = stack.server.wait_for_run(event_id, timeout=60)
    assert parent["status"] == "Completed", stack.logs()
    inherited = {"conv": "42", "org": "acme"}
    calls = [
        e for e in stack.app.ledger_of("sessions", role="parent") if e["run_id"] == parent["run_id"]
    ]
    assert calls and all(c["sessions"] == inherited for c in calls)
    assert calls[0]["metas"] == [{"sessions": inherited}]
    since = calls[0]["t"]

    def child(role: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = wait_until(
            lambda: [e for e in stack.app.ledger_of("sessions", role=role) if e["t"] >= since],
            timeout=30,
            what=role,
        )
        return found[-1]

    assert child("child-sendEvent")["sessions"] == inherited
    assert child("child-send")["sessions"] == inherited
    # The event's own sessions win, and a null drops an inherited one.
    assert child("child-override")["sessions"] == {"conv": "42", "org": "other"}
    assert child("invoked")["sessions"] == inherited
    [deferred] = wait_for_deferred(stack, parent["run_id"])
    assert deferred["sessions"] == inherited
    # Stored events keep the resolved sessions: the child of step.sendEvent's, for one.
    children = [
        e for e in stack.server.events("js4x/sessions.child") if e["data"]["via"] == "sendEvent"
    ]
    assert children[0]["meta"] == {"sessions": inherited}


def test_a_batch_run_has_the_sessions_its_events_share(stack: Stack) -> None:
    run, seen = run_a_batch(stack, "js4x/sessions.batch")
    assert run["output"] == 2
    assert seen["sessions"] == SHARED
    assert seen["metas"] == BATCH_METAS
