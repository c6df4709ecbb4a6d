"""The official JS SDK 4.x's durable endpoints (``inngest.endpoint()``) on our server.

The cases follow the SDK's own integration tests (4.x reference §2.6-§2.9:
durableEndpoints/syncNoStream, asyncNoStream, syncStream, asyncStream): the app
(``js/endpoints.mjs``) serves plain HTTP handlers made durable; the tests call them as an
ordinary client would, follow where they are sent (a 302 to the run's output, an SSE
redirect to the run's stream), and read the runs back through the REST API.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stepwise.protocol import hash_step_id
from support.harness import REPO, Stack, wait_until

JS_DIR = REPO / "tests" / "interop" / "js"
APP = "endpoints.mjs"
FUNCTIONS = 1  # the deferred function; endpoints have no sync


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not (JS_DIR / "node_modules" / "inngest").is_dir():
        # `make test` installs it (npm ci); a missing install is a broken setup, not a skip.
        pytest.fail(f"the JS SDK is not installed: run `npm ci --prefix {JS_DIR}`")
    assert shutil.which("node"), "Node.js is required for the JS interop tests"
    tmp = tmp_path_factory.mktemp("js-endpoints")
    with Stack(tmp, APP, server_args=["--retry-interval", "1"], functions=FUNCTIONS) as s:
        yield s


def url(stack: Stack, path: str) -> str:
    return f"http://127.0.0.1:{stack.app.port}{path}"


def frames(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """The (event, data) of each SSE frame of a streamed response, as they come."""
    held = ""
    for text in response.iter_text():
        held += text
        while "\n\n" in held:
            frame, held = held.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
            if "event" in fields:
                yield fields["event"], json.loads(fields.get("data", "null"))


def read_stream(address: str, headers: dict[str, str] | None = None) -> list[tuple[str, Any]]:
    with httpx.stream("GET", address, headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(frames(response))


def run_of(stack: Stack, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = stack.server.http.get(f"/v1/runs/{run_id}").json()["data"]
    return run


def entries(stack: Stack, path: str, kind: str = "enter") -> list[dict[str, Any]]:
    return stack.app.ledger_of(kind, path=path)


def test_an_endpoint_that_completes_in_its_request_answers_as_its_handler_did(
    stack: Stack,
) -> None:
    response = httpx.get(url(stack, "/sync"), timeout=30)
    assert response.status_code == 202, stack.logs()
    assert response.headers["x-my-header"] == "yes"
    assert response.json() == {"msg": "hello world"}
    [entered] = entries(stack, "/sync")
    run_id = entered["run_id"]
    assert not entered["reentry"]
    assert [e["step"] for e in entries(stack, "/sync", "step")] == ["a", "b"]
    # The run, its steps and its end were checkpointed as they happened (the end in the
    # background: a handler that returns a Response answers its client first).
    run = stack.server.wait_for_run_end(run_id)
    assert run["status"] == "Completed"
    assert run["output"]["status"] == 200
    assert json.loads(run["output"]["body"]) is None  # a Response passed through is not re-read
    kinds = [h["kind"] for h in stack.server.history(run_id)]
    assert kinds == ["RunStarted", "StepCompleted", "StepCompleted", "RunCompleted"]
    actions = stack.server.http.get(f"/v0/runs/{run_id}/actions").json()
    assert actions == {
        hash_step_id("a"): {"data": "hello"},
        hash_step_id("b"): {"data": "hello world"},
    }

    plain = httpx.get(url(stack, "/plain"), timeout=30)
    assert (plain.status_code, plain.json()) == (200, {"n": 1})


def test_an_endpoint_that_goes_async_is_reentered_and_its_client_gets_the_response(
    stack: Stack,
) -> None:
    response = httpx.get(url(stack, "/async?x=1"), timeout=30)
    assert response.status_code == 302, stack.logs()
    location = response.headers["location"]
    [first] = entries(stack, "/async")
    run_id = first["run_id"]
    assert location.startswith(f"{stack.server.url}/v1/http/runs/{run_id}/output?token=")

    # The output waits for the re-entered run to end. Once async, the SDK sends a returned
    # Response's text as a JSON string with status 200 (the SDK's own test expects the
    # same body, '"\\"hello world\\""', inside the reference's envelope).
    output = httpx.get(location, timeout=60)
    assert output.status_code == 200, stack.logs()
    assert json.loads(output.text) == '"hello world"'
    assert output.headers["content-type"] == "application/json"
    run = run_of(stack, run_id)
    assert run["status"] == "Completed"
    # The server re-entered the handler at its URL with the original query, as itself.
    reentries = [e for e in entries(stack, "/async") if e["reentry"]]
    assert reentries and all(e["query"] == "?x=1" and e["run_id"] == run_id for e in reentries)
    assert [e["step"] for e in entries(stack, "/async", "step")] == ["a", "b"]
    kinds = [h["kind"] for h in stack.server.history(run_id)]
    assert kinds[:3] == ["RunStarted", "StepCompleted", "SleepStarted"]
    assert kinds[-1] == "RunCompleted"

    # The token guards the output: none or another run's is refused.
    bare = location.split("?")[0]
    assert httpx.get(bare, timeout=10).status_code == 401
    assert httpx.get(f"{bare}?token=nope", timeout=10).json()["code"] == "invalid_token"
    # The alias under /v1/checkpoint answers the same.
    token = location.split("token=", 1)[1]
    alias = httpx.get(f"{stack.server.url}/v1/checkpoint/{run_id}/output?token={token}")
    assert alias.text == output.text


def test_a_streaming_endpoint_that_goes_async_relays_every_frame_in_order(
    stack: Stack,
) -> None:
    sync_part = read_stream(url(stack, "/stream"), {"accept": "text/event-stream"})
    assert [event for event, _ in sync_part] == [
        "inngest.metadata",
        "inngest.stream",
        "inngest.commit",
        "inngest.redirect_info",
    ], stack.logs()
    run_id = sync_part[0][1]["runId"]
    a, b = hash_step_id("a"), hash_step_id("b")
    assert sync_part[1][1] == {"data": "chunk-a", "hashedStepId": a}
    redirect = sync_part[3][1]
    assert redirect["runId"] == run_id
    assert redirect["url"].startswith(f"{stack.server.url}/v1/realtime/sse?token=")

    async_part = read_stream(redirect["url"])
    assert async_part == [
        ("inngest.metadata", {"runId": run_id}),
        ("inngest.stream", {"data": "chunk-b", "hashedStepId": b}),
        ("inngest.commit", {"hashedStepId": b}),
        ("inngest.metadata", {"runId": run_id}),
        (
            "inngest.response",
            {
                "status": "succeeded",
                "response": {
                    "body": '"streamed"',
                    "statusCode": 200,
                    "headers": {"content-type": "application/json"},
                },
            },
        ),
    ], stack.logs()
    assert stack.server.wait_for_run_end(run_id)["status"] == "Completed"

    # A subscriber who comes after the run ended still gets every byte, the same bytes.
    with httpx.stream("GET", redirect["url"], timeout=30) as first:
        early = first.read()
    with httpx.stream("GET", redirect["url"], timeout=30) as late:
        assert late.read() == early
    assert httpx.get(f"{stack.server.url}/v1/realtime/sse?token={run_id}.nope").status_code == 401


def test_a_streaming_endpoint_that_completes_in_its_request_streams_its_response(
    stack: Stack,
) -> None:
    seen = read_stream(url(stack, "/stream-sync"), {"accept": "text/event-stream"})
    events = [event for event, _ in seen]
    assert events == [
        "inngest.metadata",
        "inngest.stream",
        "inngest.commit",
        "inngest.redirect_info",
        "inngest.response",
    ], stack.logs()
    assert seen[1][1]["data"] == "only-chunk"
    response = seen[-1][1]
    assert response["status"] == "succeeded"
    assert response["response"]["statusCode"] == 201
    assert response["response"]["headers"]["x-my-header"] == "sync"
    assert json.loads(response["response"]["body"]) == {"a": "a"}
    run_id = seen[0][1]["runId"]
    run = stack.server.wait_for_run_end(run_id)
    assert run["status"] == "Completed"
    assert json.loads(run["output"]["body"]) == '{"a":"a"}'


def test_a_step_that_keeps_failing_is_retried_by_the_server_within_the_endpoint_budget(
    stack: Stack,
) -> None:
    sync_part = read_stream(url(stack, "/retry"), {"accept": "text/event-stream"})
    assert [event for event, _ in sync_part] == [
        "inngest.metadata",
        "inngest.stream",
        "inngest.rollback",
        "inngest.redirect_info",
    ], stack.logs()
    run_id = sync_part[0][1]["runId"]
    async_part = read_stream(sync_part[3][1]["url"])
    # retries: 3, so the attempt in the request and 3 re-entries; then the run fails.
    attempt = ["inngest.metadata", "inngest.stream", "inngest.rollback"]
    assert [e for e, _ in async_part] == [
        *attempt * 3,
        "inngest.metadata",
        "inngest.response",
    ], stack.logs()
    final = async_part[-1][1]
    assert final["status"] == "failed"
    assert (final["response"]["statusCode"], final["response"]["body"]) == (500, '"always fails"')
    assert len(entries(stack, "/retry", "step")) == 4
    assert stack.server.wait_for_run_end(run_id)["status"] == "Failed"
    kinds = [h["kind"] for h in stack.server.history(run_id)]
    assert kinds.count("StepErrored") == 3 and kinds.count("StepFailed") == 1


def test_defers_made_inside_an_endpoint_fire_when_its_run_ends(stack: Stack) -> None:
    response = httpx.get(url(stack, "/defer"), timeout=30)
    assert response.status_code == 302, stack.logs()
    assert httpx.get(response.headers["location"], timeout=60).text == '"deferred"'
    run_id = entries(stack, "/defer")[0]["run_id"]
    [deferred] = wait_until(
        lambda: [
            e
            for e in stack.app.ledger_of("deferred")
            if any(p["runId"] == run_id for p in e["parents"])
        ],
        timeout=30,
        what="the deferred run",
    )
    assert deferred["data"] == {"from": "endpoint"}
    kinds = [h["kind"] for h in stack.server.history(run_id) if h["kind"].startswith("Defer")]
    assert kinds == ["DeferAdded", "DeferAdded", "DeferAborted", "DeferStarted"]


def test_endpoint_runs_are_listed_with_their_app_and_function(stack: Stack) -> None:
    httpx.get(url(stack, "/plain"), timeout=30)
    app_name = f"127.0.0.1:{stack.app.port}"
    apps = {a["name"]: a for a in stack.server.http.get("/v1/apps").json()["data"]}
    assert apps[app_name]["framework"] == "endpoint"
    assert apps[app_name]["sdk"].startswith("inngest-js:")
    slugs = {f["slug"] for f in apps[app_name]["functions"]}
    assert f"{app_name}-get-plain" in slugs
    listed = stack.server.http.get(
        "/v1/runs", params={"function": f"{app_name}-get-plain", "limit": 100}
    ).json()["data"]
    plain_runs = {e["run_id"] for e in entries(stack, "/plain")}
    assert plain_runs and plain_runs <= {r["run_id"] for r in listed}
    # The dashboard's run page shows it as any run.
    page = stack.server.http.get(f"/runs/{next(iter(plain_runs))}")
    assert page.status_code == 200 and "get-plain" in page.text
