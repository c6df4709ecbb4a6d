"""The durable core end to end: the real server process, a real Stepwise SDK app, over HTTP."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepwise.protocol import make_seed
from support.harness import Stack, wait_until

DURABLE_FUNCTIONS = 8


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("durable"),
        "durable_app",
        server_args=["--retry-interval", "1"],
        functions=DURABLE_FUNCTIONS,
    ) as s:
        yield s


def test_three_steps_with_a_sleep_complete_with_the_right_output(stack: Stack) -> None:
    event_id = stack.server.send("test/three", {"n": 20})
    run = stack.server.wait_for_run(event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"a": 21, "b": 42, "c": "done"}
    assert stack.steps_of(run["run_id"]) == [("a", 0), ("b", 0), ("c", 0)]
    started = time.mktime(time.strptime(run["run_started_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    ended = time.mktime(time.strptime(run["ended_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert ended - started >= 1, "the 1s sleep must actually pass"

    finished = stack.server.http.get(
        "/v1/events", params={"name": "inngest/function.finished"}
    ).json()["data"]
    mine = [e for e in finished if e["data"]["run_id"] == run["run_id"]]
    assert len(mine) == 1
    assert mine[0]["data"]["result"] == {"a": 21, "b": 42, "c": "done"}
    assert mine[0]["data"]["function_id"] == "durable-three-steps"
    assert mine[0]["data"]["event"]["data"] == {"n": 20}
    assert mine[0]["data"]["_inngest"] == {"status": "Completed"}


def test_a_failing_step_is_retried_and_succeeded_steps_never_run_again(stack: Stack) -> None:
    event_id = stack.server.send("test/flaky", {"failures": 2})
    run = stack.server.wait_for_run(event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == "ok on attempt 2"
    steps = stack.steps_of(run["run_id"])
    assert steps == [("stable", 0), ("flaky", 0), ("flaky", 1), ("flaky", 2)]
    history = stack.server.http.get(f"/v1/runs/{run['run_id']}/history").json()["data"]
    errored = [h for h in history if h["kind"] == "StepErrored"]
    assert [(h["name"], h["attempt"]) for h in errored] == [("flaky", 0), ("flaky", 1)]
    assert errored[0]["error"]["message"] == "failure on attempt 0"
    times = [
        e["t"]
        for e in stack.app.executions()
        if e["run_id"] == run["run_id"] and e["step"] == "flaky"
    ]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.9 for gap in gaps), f"retries must wait for the retry interval: {gaps}"


def test_non_retriable_error_fails_the_run_at_once(stack: Stack) -> None:
    event_id = stack.server.send("test/non-retriable")
    run = stack.server.wait_for_run(event_id)
    assert run["status"] == "Failed", stack.logs()
    assert run["output"]["message"] == "card declined for good"
    assert run["output"]["name"] == "NonRetriableError"
    assert stack.steps_of(run["run_id"]) == [("boom", 0)]
    failed = stack.server.http.get("/v1/events", params={"name": "inngest/function.failed"}).json()[
        "data"
    ]
    mine = [e for e in failed if e["data"]["run_id"] == run["run_id"]]
    assert len(mine) == 1 and mine[0]["id"] == run["run_id"]
    assert mine[0]["data"]["error"]["message"] == "card declined for good"


def test_step_error_is_catchable_in_user_code(stack: Stack) -> None:
    event_id = stack.server.send("test/catches")
    run = stack.server.wait_for_run(event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == "recovered from ValueError: bad input"
    assert stack.steps_of(run["run_id"]) == [("fails", 0)]


def test_sync_def_handler_with_every_tool(stack: Stack) -> None:
    event_id = stack.server.send("test/sync")
    run = stack.server.wait_for_run(event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"value": 42, "sent": 1}
    assert stack.steps_of(run["run_id"]) == [("compute", 0)]
    notified = stack.server.http.get("/v1/events", params={"name": "test/notified"}).json()["data"]
    assert [e["data"] for e in notified] == [{"value": 42}]


def test_an_event_id_seen_before_starts_no_second_run(stack: Stack) -> None:
    first = stack.server.send("test/catches", id="order-1234")
    second = stack.server.send("test/catches", id="order-1234")
    assert first != second  # both events are stored ...
    stack.server.wait_for_run(first)
    time.sleep(0.5)
    assert len(stack.server.runs(first)) == 1
    assert stack.server.runs(second) == []  # ... but only the first starts a run


def test_a_retried_send_with_the_same_seed_is_stored_once(stack: Stack) -> None:
    seed = make_seed()
    body = json.dumps([{"name": "test/catches", "data": {}}])
    headers = {"content-type": "application/json", "x-inngest-event-id-seed": seed}
    ids_a = stack.server.http.post("/e/k", content=body, headers=headers).json()["ids"]
    ids_b = stack.server.http.post("/e/k", content=body, headers=headers).json()["ids"]
    assert ids_a == ids_b
    stack.server.wait_for_run(ids_a[0])
    assert len(stack.server.runs(ids_a[0])) == 1


def test_get_run_reports_status_and_output(stack: Stack) -> None:
    event_id = stack.server.send("test/three", {"n": 1})
    run = stack.server.wait_for_run(event_id)
    body = stack.server.http.get(f"/v1/runs/{run['run_id']}").json()
    assert body["data"]["status"] == "Completed"
    assert body["data"]["output"] == {"a": 2, "b": 4, "c": "done"}
    assert body["data"]["event_id"] == event_id
    assert "fetched_at" in body["metadata"]
    history = stack.server.http.get(f"/v1/runs/{run['run_id']}/history").json()["data"]
    kinds = [(h["kind"], h["name"]) for h in history]
    assert kinds == [
        ("RunStarted", None),
        ("StepCompleted", "a"),
        ("SleepStarted", "nap"),
        ("SleepEnded", "nap"),
        ("StepCompleted", "b"),
        ("StepCompleted", "c"),
        ("RunCompleted", None),
    ]
    assert [h.get("output") for h in history if h["kind"] == "StepCompleted"] == [2, 4, "done"]
    event = stack.server.http.get(f"/v1/events/{event_id}").json()["data"]
    assert event["name"] == "test/three" and event["data"] == {"n": 1}


def test_cron_function_fires_on_schedule(stack: Stack) -> None:
    """``* * * * *`` fires at the next minute boundary: this test waits up to ~65 s."""

    def tick() -> list[dict[str, object]]:
        events = stack.server.http.get(
            "/v1/events", params={"name": "inngest/scheduled.timer"}
        ).json()["data"]
        return [e for e in events if e["data"].get("cron") == "* * * * *"]

    timers = wait_until(tick, timeout=70, interval=0.5, what="a cron tick")
    run = stack.server.wait_for_run(timers[0]["internal_id"])
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"event": "inngest/scheduled.timer", "cron": "* * * * *"}
    assert run["cron"] == "* * * * *"
    scheduled_at = str(timers[0]["data"]["scheduledAt"])
    assert scheduled_at.endswith(":00Z"), "cron ticks fall on the minute"


@pytest.fixture
def slow_retry_stack(tmp_path: Path) -> Iterator[Stack]:
    # No --retry-interval: the reference backoff table applies (first retry after 15-45 s).
    with Stack(tmp_path, "durable_app", functions=DURABLE_FUNCTIONS) as s:
        yield s


def test_retry_after_is_honoured_and_backoff_table_applies_otherwise(
    slow_retry_stack: Stack,
) -> None:
    stack = slow_retry_stack
    limited = stack.server.send("test/retry-after")
    flaky = stack.server.send("test/flaky", {"failures": 1})
    run = stack.server.wait_for_run(limited, timeout=20)
    assert run["status"] == "Completed", stack.logs()
    times = [e["t"] for e in stack.app.executions() if e["run_id"] == run["run_id"]]
    assert len(times) == 2
    assert times[1] - times[0] >= 1.9, "Retry-After of 2 s must be honoured"
    assert times[1] - times[0] < 15, "Retry-After must win over the 15 s backoff"
    # The flaky step failed once and, by the backoff table, must not have been retried yet.
    flaky_runs = stack.server.runs(flaky)
    assert flaky_runs and flaky_runs[0]["status"] == "Running"
    assert stack.steps_of(flaky_runs[0]["run_id"]) == [("stable", 0), ("flaky", 0)]


def test_calls_for_unknown_functions_get_a_clear_error(stack: Stack) -> None:
    import httpx

    body = json.dumps({"event": {"name": "x", "data": {}}, "steps": {}, "ctx": {"run_id": "r"}})
    response = httpx.post(
        f"{stack.app.url}?fnId=durable-no-such-function&stepId=step", content=body
    )
    assert response.status_code == 404
    assert response.json()["code"] == "function_not_found"
    missing = httpx.post(f"{stack.app.url}?stepId=step", content=body)
    assert missing.status_code == 400
    assert missing.json()["code"] == "missing_fn_id"


@pytest.fixture
def unpolled_stack(tmp_path: Path) -> Iterator[Stack]:
    # No re-sync polling: the app must not put a removed function back during the test.
    with Stack(
        tmp_path,
        "durable_app",
        server_args=["--no-poll", "--retry-interval", "1"],
        functions=DURABLE_FUNCTIONS,
    ) as s:
        yield s


def test_a_run_whose_function_disappeared_fails_with_a_clear_error(unpolled_stack: Stack) -> None:
    stack = unpolled_stack
    # The app syncs again without "slow" while a run of it sleeps: the run ends Failed.
    event_id = stack.server.send("test/slow", {"step_seconds": 0.01, "sleep": "2s"})
    wait_until(lambda: stack.server.runs(event_id), timeout=10, what="the run")
    run_id = stack.server.runs(event_id)[0]["run_id"]
    wait_until(
        lambda: any(
            h["kind"] == "SleepStarted"
            for h in stack.server.http.get(f"/v1/runs/{run_id}/history").json()["data"]
        ),
        timeout=10,
        what="the sleep",
    )
    functions = [
        f for app in stack.server.http.get("/v1/apps").json()["data"] for f in app["functions"]
    ]
    runtime = {"type": "http"}
    config = {
        "url": stack.app.url,
        "appName": "durable",
        "sdk": "py:v0.1.0",
        "v": "0.1",
        "framework": "test",
        "functions": [
            {
                "id": f["slug"],
                "name": f["name"],
                "triggers": f["triggers"],
                "steps": {
                    "step": {"id": "step", "name": "step", "runtime": {**runtime, "url": f["url"]}}
                },
            }
            for f in functions
            if f["slug"] != "durable-slow"
        ],
    }
    stack.server.http.post("/fn/register", json=config).raise_for_status()
    run = stack.server.wait_for_run(event_id, timeout=20)
    assert run["status"] == "Failed", stack.logs()
    assert "could not find function with ID: durable-slow" in run["output"]["message"]
