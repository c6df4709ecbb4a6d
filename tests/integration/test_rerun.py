"""``POST /v1/runs/{id}/rerun`` on a real server and app: a rerun executes its steps again
(all of them, or from a step on, the earlier ones' results kept), the original is left as
it was, and a rerun the server cannot start is a 4xx JSON error that says why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepwise.protocol import new_ulid
from support.harness import ServerProcess, Stack, wait_until

APP_URL = "http://127.0.0.1:9/api/inngest"  # nothing listens there: calls fail at once


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("rerun"), "rerun_app", functions=3) as s:
        yield s


def rerun(server: ServerProcess, run_id: str, body: Any = None) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    return server.http.post(
        f"/v1/runs/{run_id}/rerun", content=content, headers={"content-type": "application/json"}
    )


def started_rerun(server: ServerProcess, run_id: str, body: Any = None) -> dict[str, Any]:
    response = rerun(server, run_id, body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    assert response.headers["location"] == f"/v1/runs/{data['run_id']}"
    assert data["original_run_id"] == run_id
    assert data["run_id"] != run_id
    return data


def finished_three(stack: Stack, n: int) -> dict[str, Any]:
    run = stack.server.wait_for_run(stack.server.send("rerun/three", {"n": n}))
    assert run["status"] == "Completed", stack.logs()[-3000:]
    return run


def executed(stack: Stack, run_id: str) -> list[str]:
    return [step for step, _ in stack.steps_of(run_id)]


def step_id(history: list[dict[str, Any]], name: str) -> str:
    [found] = [e["step_id"] for e in history if e["kind"] == "StepCompleted" and e["name"] == name]
    return str(found)


def test_a_rerun_executes_every_step_again_and_ends_with_the_same_output(stack: Stack) -> None:
    server = stack.server
    original = finished_three(stack, 1)
    history_before = server.history(original["run_id"])

    new = started_rerun(server, original["run_id"])

    assert new["event_id"] == original["event_id"]
    assert new["function_slug"] == original["function_slug"]
    done = server.wait_for_run_end(new["run_id"])
    assert done["status"] == "Completed", stack.logs()[-3000:]
    assert done["output"]["values"] == original["output"]["values"] == [2, 4, 7]
    # Step one ran again: its result is a new one.
    assert done["output"]["one_token"] != original["output"]["one_token"]
    assert executed(stack, new["run_id"]) == ["one", "two", "three"]
    # The original is untouched: same record, same history, no step of its own ran again.
    assert server.run(original["run_id"]) == original
    assert server.history(original["run_id"]) == history_before
    assert executed(stack, original["run_id"]) == ["one", "two", "three"]
    # Both runs are the event's runs.
    runs = {r["run_id"]: r for r in server.runs(original["event_id"])}
    assert set(runs) == {original["run_id"], new["run_id"]}
    assert runs[new["run_id"]]["original_run_id"] == original["run_id"]
    assert runs[original["run_id"]]["original_run_id"] is None


def test_a_rerun_from_a_step_keeps_the_earlier_results_and_executes_the_rest(
    stack: Stack,
) -> None:
    server = stack.server
    original = finished_three(stack, 10)
    history = server.history(original["run_id"])
    one, two = step_id(history, "one"), step_id(history, "two")

    new = started_rerun(server, original["run_id"], {"from_step": two})

    done = server.wait_for_run_end(new["run_id"])
    assert done["status"] == "Completed", stack.logs()[-3000:]
    assert executed(stack, new["run_id"]) == ["two", "three"]
    assert done["output"]["values"] == original["output"]["values"] == [11, 22, 25]
    # Step one was not executed: the rerun has the original's very result.
    assert done["output"]["one_token"] == original["output"]["one_token"]
    actions = server.http.get(f"/v0/runs/{new['run_id']}/actions").json()
    original_actions = server.http.get(f"/v0/runs/{original['run_id']}/actions").json()
    assert actions[one] == original_actions[one]
    assert actions[two] != original_actions[two]
    # Its timeline tells the copied step first, saying where it came from.
    new_history = server.history(new["run_id"])
    assert (new_history[0]["kind"], new_history[0]["step_id"], new_history[0]["name"]) == (
        "StepCompleted",
        one,
        "one",
    )
    assert new_history[0]["copied_from_run_id"] == original["run_id"]
    assert new_history[0]["output"] == original_actions[one]["data"]
    assert executed(stack, original["run_id"]) == ["one", "two", "three"]


def test_a_rerun_from_the_first_step_and_a_rerun_of_a_rerun(stack: Stack) -> None:
    server = stack.server
    original = finished_three(stack, 3)
    one = step_id(server.history(original["run_id"]), "one")

    first = started_rerun(server, original["run_id"], {"from_step": one})
    done = server.wait_for_run_end(first["run_id"])
    assert executed(stack, first["run_id"]) == ["one", "two", "three"]

    second = started_rerun(server, first["run_id"], {})
    assert second["original_run_id"] == first["run_id"]
    again = server.wait_for_run_end(second["run_id"])
    assert again["status"] == "Completed"
    assert again["output"]["values"] == done["output"]["values"] == [4, 8, 11]


def test_a_batch_run_is_rerun_with_all_its_events(stack: Stack) -> None:
    server = stack.server
    body = [{"name": "rerun/batched", "data": {"n": n}} for n in (1, 2, 3)]
    ids = server.http.post(f"/e/{server.event_key}", json=body).json()["ids"]
    original = server.wait_for_run(ids[0])
    assert original["status"] == "Completed", stack.logs()[-3000:]
    assert original["output"] == [1, 2, 3, 6]

    new = started_rerun(server, original["run_id"])

    done = server.wait_for_run_end(new["run_id"])
    assert done["output"] == [1, 2, 3, 6]
    batch = server.http.get(f"/v0/runs/{new['run_id']}/batch").json()
    assert [e["data"]["n"] for e in batch] == [1, 2, 3]
    assert executed(stack, new["run_id"]) == ["sum"]


def test_a_rerun_of_a_run_still_going_is_a_run_of_its_own(stack: Stack) -> None:
    # Nothing keeps a run from being rerun before it ends: the two never share a step.
    server = stack.server
    event_id = server.send("rerun/three", {"n": 5})
    first = wait_until(lambda: server.runs(event_id), timeout=20, what="the run")[0]

    new = started_rerun(server, first["run_id"])

    assert server.wait_for_run_end(new["run_id"])["output"]["values"] == [6, 12, 15]
    assert server.wait_for_run_end(first["run_id"])["output"]["values"] == [6, 12, 15]
    assert executed(stack, new["run_id"]) == ["one", "two", "three"]
    assert executed(stack, first["run_id"]) == ["one", "two", "three"]


def test_a_rerun_obeys_flow_control_as_any_run(stack: Stack) -> None:
    # A rate limit of one run an hour per tenant: the original took it, the rerun is skipped.
    server = stack.server
    original = server.wait_for_run(server.send("rerun/limited", {"tenant": "t1"}))
    assert original["status"] == "Completed", stack.logs()[-3000:]

    skipped = started_rerun(server, original["run_id"])

    assert skipped["status"] == "Skipped"
    assert skipped["skip_reason"] == "rate_limited"
    assert executed(stack, skipped["run_id"]) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"from_step": "no-such-step"}, 400, "step_not_completed"),
        ({"from_step": 2}, 400, "invalid_rerun"),
        ({"from_step": ""}, 400, "invalid_rerun"),
        ({"from": "x"}, 400, "invalid_rerun"),
        ([1, 2], 400, "invalid_rerun"),
        ("from_step", 400, "invalid_rerun"),
    ],
)
def test_a_bad_rerun_request_is_refused_with_a_json_error(
    stack: Stack, body: Any, status: int, code: str
) -> None:
    server = stack.server
    original = finished_three(stack, 7)
    before = server.runs(original["event_id"])

    response = rerun(server, original["run_id"], body)

    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == code and error["status"] == status and error["error"]
    assert server.runs(original["event_id"]) == before  # no run was started


def test_a_request_that_is_not_json_or_names_no_run_is_refused(stack: Stack) -> None:
    server = stack.server
    original = finished_three(stack, 8)

    not_json = server.http.post(f"/v1/runs/{original['run_id']}/rerun", content=b"{nope")
    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid_json")

    unknown = rerun(server, new_ulid())
    assert (unknown.status_code, unknown.json()["code"]) == (404, "run_not_found")

    malformed = rerun(server, "not-a-run-id")
    assert (malformed.status_code, malformed.json()["code"]) == (400, "invalid_id")

    wrong_method = server.http.get(f"/v1/runs/{original['run_id']}/rerun")
    assert wrong_method.status_code == 405
    assert len(server.runs(original["event_id"])) == 1


def test_a_run_whose_function_is_gone_cannot_be_rerun(backend: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, sdk_urls=[])
    try:
        server.start_and_wait()
        function = {
            "id": "gone-soon",
            "name": "gone soon",
            "triggers": [{"event": "rerun/gone"}],
            "steps": {"step": {"id": "step", "runtime": {"url": APP_URL}}},
        }
        body = {"url": APP_URL, "appName": "gone", "functions": [function]}
        assert server.http.post("/fn/register", json=body).status_code == 200
        event_id = server.send("rerun/gone")
        run_id = wait_until(lambda: server.runs(event_id), timeout=20, what="the run")[0]["run_id"]
        # The app syncs again without the function.
        assert server.http.post("/fn/register", json={**body, "functions": []}).status_code == 200

        response = rerun(server, run_id)

        assert response.status_code == 409, response.text
        error = response.json()
        assert error["code"] == "function_not_found"
        assert "gone-soon" in error["error"] and "no longer synced" in error["error"]
        assert [r["run_id"] for r in server.runs(event_id)] == [run_id]
    finally:
        server.close()


def test_a_server_killed_right_after_a_rerun_committed_keeps_it_whole(tmp_path: Path) -> None:
    # The server dies between committing the rerun and answering: the client gets no answer,
    # but the run, its first job and its copied steps are all stored, and it completes.
    with Stack(tmp_path, "rerun_app", functions=3) as stack:
        server = stack.server
        original = finished_three(stack, 20)
        two = step_id(server.history(original["run_id"]), "two")
        server.stop()
        server.env["STEPWISE_FAULTS"] = "rerun.created=crash"
        server.start_and_wait()

        with pytest.raises(httpx.TransportError):
            rerun(server, original["run_id"], {"from_step": two})
        assert server.proc is not None
        assert server.proc.wait(timeout=10) == -9  # SIGKILL, at the fault point
        server.start_and_wait()

        runs = server.runs(original["event_id"])
        [new] = [r for r in runs if r["run_id"] != original["run_id"]]
        assert new["original_run_id"] == original["run_id"]
        done = server.wait_for_run_end(new["run_id"])
        assert done["status"] == "Completed", stack.logs()[-3000:]
        assert done["output"] == original["output"]
        assert executed(stack, new["run_id"]) == ["two", "three"]


def test_in_production_a_rerun_needs_an_api_key(backend: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, sdk_urls=[])
    server.production(signing_key="signkey-prod-" + "ab" * 32, event_key="rerun-event-key")
    try:
        server.start_and_wait()
        run_id = new_ulid()
        anonymous = httpx.post(f"{server.url}/v1/runs/{run_id}/rerun", json={})
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["code"] == "unauthorized"
        # With the signing key's hash (the harness's client sends it), the run is looked up.
        known = rerun(server, run_id, {})
        assert (known.status_code, known.json()["code"]) == (404, "run_not_found")
    finally:
        server.close()
