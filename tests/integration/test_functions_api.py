"""``POST /v1/functions/{slug}/invoke`` and ``GET /v1/functions/{slug}/metrics`` on a real
server and app: an invoke starts one run of that function only, with the data given, and
the metrics count it; bad input is a 4xx JSON error that says what is wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.harness import ServerProcess, Stack


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("functions"), "functions_app", functions=3) as s:
        yield s


def invoke(server: ServerProcess, slug: str, body: bytes) -> httpx.Response:
    return server.http.post(
        f"/v1/functions/{slug}/invoke", content=body, headers={"content-type": "application/json"}
    )


def invoked(server: ServerProcess, slug: str, data: dict[str, Any]) -> dict[str, Any]:
    response = invoke(server, slug, json.dumps({"data": data}).encode())
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()["data"]
    assert response.headers["location"] == f"/v1/runs/{run['run_id']}"
    assert run["function_slug"] == slug
    return run


def metrics(server: ServerProcess, slug: str) -> dict[str, Any]:
    response = server.http.get(f"/v1/functions/{slug}/metrics")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def totals(window: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for bucket in window["buckets"]:
        for status, n in bucket["counts"].items():
            out[status] = out.get(status, 0) + n
    return {s: n for s, n in out.items() if n}


def test_an_invoke_runs_that_function_only_with_the_data_given(stack: Stack) -> None:
    server = stack.server
    run = invoked(server, "fns-echo", {"who": "Ada", "n": [1, 2]})

    done = server.wait_for_run_end(run["run_id"])
    assert done["status"] == "Completed", stack.logs()[-3000:]
    assert done["output"]["name"] == "inngest/function.invoked"
    assert done["output"]["data"]["who"] == "Ada"
    assert done["output"]["data"]["n"] == [1, 2]
    # The event is stored under the invoke name, and started this run and no other.
    event = server.http.get(f"/v1/events/{run['event_id']}").json()["data"]
    assert event["name"] == "inngest/function.invoked"
    assert [r["run_id"] for r in server.runs(run["event_id"])] == [run["run_id"]]


def test_an_empty_body_invokes_with_empty_data(stack: Stack) -> None:
    server = stack.server
    response = invoke(server, "fns-echo", b"")
    assert response.status_code == 201, response.text
    done = server.wait_for_run_end(response.json()["data"]["run_id"])
    assert done["status"] == "Completed"
    assert {k: v for k, v in done["output"]["data"].items() if k != "_inngest"} == {}


def test_a_batched_function_holds_the_invoke_and_says_so(stack: Stack) -> None:
    response = invoke(stack.server, "fns-batched", b'{"data": {"user": "u1"}}')
    assert response.status_code == 202, response.text
    body = response.json()["data"]
    assert (body["run_id"], body["held"]) == (None, "batch")
    assert body["event_id"]


def test_metrics_count_the_functions_runs_by_status_with_durations(stack: Stack) -> None:
    server = stack.server
    before = metrics(server, "fns-echo")
    runs = [invoked(server, "fns-echo", {"wait_ms": 200}) for _ in range(3)]
    runs.append(invoked(server, "fns-echo", {"fail": True}))
    for run in runs:
        server.wait_for_run_end(run["run_id"])

    after = metrics(server, "fns-echo")
    assert after["function_id"] == "fns-echo"
    for window, seconds, buckets in (("last_hour", 60, 60), ("last_day", 3600, 24)):
        got, had = totals(after[window]), totals(before[window])
        assert got.get("Completed", 0) - had.get("Completed", 0) == 3, (window, got, had)
        assert got.get("Failed", 0) - had.get("Failed", 0) == 1, (window, got, had)
        assert after[window]["bucket_seconds"] == seconds
        assert len(after[window]["buckets"]) == buckets
        durations = after[window]["duration_ms"]
        assert durations["ended"] == durations["sampled"] == sum(got.values())
        # The slowest took at least 200 ms (the module's other runs are quicker).
        assert 0 <= durations["p50"] <= durations["p95"]
        assert durations["p95"] >= 200
    # Another function's runs are not counted.
    other = metrics(server, "fns-configured")
    assert totals(other["last_day"]) == {}
    assert other["last_day"]["duration_ms"]["p50"] is None


def test_an_unknown_function_is_404_json(stack: Stack) -> None:
    server = stack.server
    for response in (
        server.http.get("/v1/functions/fns-nope/metrics"),
        invoke(server, "fns-nope", b'{"data": {}}'),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "function_not_found"
        assert "fns-nope" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b'{"data": [1, 2]}', "invalid_invoke", "data"),
        (b'{"data": "text"}', "invalid_invoke", "data"),
        (b"[]", "invalid_invoke", "object"),
        (b'{"data": {}, "name": "x"}', "invalid_invoke", "name"),
    ],
)
def test_bad_bodies_are_400_json_saying_what_is_wrong(
    stack: Stack, body: bytes, code: str, says: str
) -> None:
    response = invoke(stack.server, "fns-echo", body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert says in response.json()["error"]


def test_in_production_both_routes_need_an_api_key(backend: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, sdk_urls=[])
    server.production(signing_key="signkey-prod-" + "cd" * 32, event_key="fns-event-key")
    try:
        server.start_and_wait()
        for anonymous in (
            httpx.get(f"{server.url}/v1/functions/fns-echo/metrics"),
            httpx.post(f"{server.url}/v1/functions/fns-echo/invoke", json={"data": {}}),
        ):
            assert anonymous.status_code == 401, anonymous.text
            assert anonymous.json()["code"] == "unauthorized"
        # With the signing key's hash (the harness's client sends it), the function is looked up.
        for known in (
            server.http.get("/v1/functions/fns-echo/metrics"),
            invoke(server, "fns-echo", b"{}"),
        ):
            assert (known.status_code, known.json()["code"]) == (404, "function_not_found")
    finally:
        server.close()
