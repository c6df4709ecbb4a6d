"""``POST /v1/checkpoint/{run_id}/async`` on a real server: what it saves, what it refuses.

A function whose app never answers keeps its run active (its failed first call waits
15 s or more for a retry), which is all these tests need; the checkpointing SDK itself is
tested in ``tests/interop/test_checkpointing.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepwise.protocol import hash_signing_key, new_ulid
from support.harness import ServerProcess, wait_until

APP_URL = "http://127.0.0.1:9/api/inngest"  # nothing listens there: calls fail at once
SIGNING_KEY = "signkey-prod-" + "c4" * 32


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("checkpoint-api"), sdk_urls=[])
    proc.start_and_wait()
    function = {
        "id": "cp-unreachable",
        "name": "unreachable",
        "triggers": [{"event": "cp/start"}],
        "steps": {"step": {"id": "step", "runtime": {"url": APP_URL}, "retries": {"attempts": 3}}},
    }
    body = {"url": APP_URL, "appName": "cp", "functions": [function]}
    assert proc.http.post("/fn/register", content=json.dumps(body)).status_code == 200
    yield proc
    proc.close()


def active_run(server: ServerProcess) -> tuple[str, int, int]:
    """A run whose first call failed: (run id, its job's id, the job's generation)."""
    event_id = server.send("cp/start")
    run_id: str = wait_until(lambda: server.runs(event_id)[0]["run_id"], timeout=20, what="the run")

    def retry_pending() -> tuple[int, int] | None:
        rows = server.query(
            "SELECT id, generation FROM jobs WHERE run_id = ? AND attempt = 1", (run_id,)
        )
        return (rows[0][0], rows[0][1]) if rows else None

    job_id, generation = wait_until(retry_pending, timeout=20, what="the retry of the first call")
    return run_id, job_id, generation


def job_attempt(server: ServerProcess, job_id: int) -> int:
    [(attempt,)] = server.query("SELECT attempt FROM jobs WHERE id = ?", (job_id,))
    return int(attempt)


def post(server: ServerProcess, run_id: str, body: Any) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return server.http.post(
        f"/v1/checkpoint/{run_id}/async",
        content=raw,
        headers={"content-type": "application/json"},
    )


def step(step_id: str, data: Any) -> dict[str, Any]:
    # As the JS SDK sends it, internal fields included.
    return {
        "id": step_id,
        "op": "StepRun",
        "name": step_id,
        "displayName": step_id,
        "data": data,
        "timing": {"a": 0, "b": 0},
        "userland": {"id": step_id},
        "hashedId": step_id,
        "mode": "async",
        "rawArgs": [],
        "fulfilled": True,
        "promise": {},
        "middleware": {"wrapStep": {}},
    }


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["code"], body["status"]) == (code, status), body
    assert isinstance(body["error"], str) and body["error"]


def test_the_current_dispatch_saves_its_steps(server: ServerProcess) -> None:
    run_id, job_id, generation = active_run(server)
    body = {
        "run_id": run_id,
        "fn_id": "ignored",
        "qi_id": str(job_id),
        "request_id": "req-1",
        "generation_id": generation,
        "request_started_at": 1,
        "steps": [step("h-a", {"n": 1}), step("h-b", None)],
        "ts": 2,
    }
    response = post(server, run_id, body)
    assert response.status_code == 200, response.text
    actions = server.http.get(f"/v0/runs/{run_id}/actions").json()
    assert list(actions.items()) == [("h-a", {"data": {"n": 1}}), ("h-b", {"data": None})]
    assert server.http.get(f"/v1/runs/{run_id}").json()["data"]["status"] == "Running"
    assert job_attempt(server, job_id) == 0  # the steps that succeeded reset the budget
    # The same steps again (the SDK retries a checkpoint it got no answer to): no change.
    assert post(server, run_id, {**body, "steps": [step("h-a", "other")]}).status_code == 200
    assert server.http.get(f"/v0/runs/{run_id}/actions").json()["h-a"] == {"data": {"n": 1}}


def test_an_older_dispatch_gets_a_conflict_and_saves_nothing(server: ServerProcess) -> None:
    run_id, job_id, generation = active_run(server)
    stale = {"qi_id": str(job_id), "generation_id": generation - 1, "steps": [step("h-a", 1)]}
    assert_error(post(server, run_id, stale), 409, "stale_dispatch")
    gone = {"qi_id": str(job_id + 10_000), "generation_id": 0, "steps": [step("h-a", 1)]}
    assert_error(post(server, run_id, gone), 409, "stale_dispatch")
    assert server.http.get(f"/v0/runs/{run_id}/actions").json() == {}


def test_a_checkpoint_for_an_ended_run_gets_a_conflict(server: ServerProcess) -> None:
    run_id, _, _ = active_run(server)
    assert server.http.delete(f"/v1/runs/{run_id}").status_code == 200
    assert_error(post(server, run_id, {"steps": [step("h-a", 1)]}), 409, "run_ended")
    assert server.http.get(f"/v0/runs/{run_id}/actions").json() == {}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "empty_body"),
        (b"[]", 400, "invalid_checkpoint"),
        ({"steps": "a"}, 400, "invalid_checkpoint"),
        ({"steps": [1]}, 400, "invalid_checkpoint"),
        ({"steps": [{"op": "Nope", "id": "h"}]}, 400, "invalid_checkpoint"),
        ({"generation_id": "third", "steps": []}, 400, "invalid_checkpoint"),
        ({"steps": [{"op": "Sleep", "id": "h", "name": "1s"}]}, 400, "unsupported_op"),
        ({"steps": [{"op": "StepRun", "data": 1}]}, 400, "invalid_checkpoint"),
        ({"run_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "steps": []}, 400, "run_id_mismatch"),
        ({"steps": []}, 404, "run_not_found"),
    ],
)
def test_bad_checkpoints_get_a_4xx_with_a_code(
    server: ServerProcess, body: Any, status: int, code: str
) -> None:
    assert_error(post(server, new_ulid(), body), status, code)


def test_a_run_id_that_is_not_a_ulid_is_refused(server: ServerProcess) -> None:
    assert_error(post(server, "not-a-run", {"steps": []}), 400, "invalid_id")


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ops = st.sampled_from(["StepRun", "Step", "StepPlanned", "Sleep", "RunComplete", "x", 5, None])
steps = st.lists(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"op": ops, "id": st.one_of(st.text(max_size=8), json_values)},
            optional={"data": json_values, "name": json_values, "opts": json_values},
        ),
    ),
    max_size=4,
)


@pytest.fixture(scope="module")
def fuzzed_run(server: ServerProcess) -> str:
    return active_run(server)[0]


bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "run_id": st.one_of(st.text(max_size=30), json_values),
            "qi_id": st.one_of(st.from_regex(r"\A[0-9]{1,25}\Z"), json_values),
            "generation_id": json_values,
            "request_started_at": json_values,
            "steps": st.one_of(steps, json_values),
        },
    ),
)


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_any_body_gets_an_answer_below_500(
    server: ServerProcess, fuzzed_run: str, body: Any
) -> None:
    response = post(server, fuzzed_run, body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()
        assert isinstance(error["code"], str) and error["status"] == response.status_code


def test_the_server_logged_no_traceback(server: ServerProcess) -> None:
    assert "Traceback" not in server.log()


def test_production_mode_needs_the_signing_key(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path, sdk_urls=[])
    proc.production(signing_key=SIGNING_KEY, event_key="cp-event-key")
    proc.start_and_wait()
    try:
        url = f"{proc.url}/v1/checkpoint/{new_ulid()}/async"
        body = json.dumps({"steps": []})
        for auth in ("", "Bearer", f"Bearer {hash_signing_key('signkey-prod-' + '00' * 32)}"):
            response = httpx.post(url, content=body, headers={"authorization": auth})
            assert_error(response, 401, "unauthorized")
        good = httpx.post(
            url, content=body, headers={"authorization": f"Bearer {hash_signing_key(SIGNING_KEY)}"}
        )
        assert_error(good, 404, "run_not_found")
    finally:
        proc.close()
