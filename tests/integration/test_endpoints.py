"""Durable endpoints on a real server: our SDK's ``client.endpoint()`` routes (a FastAPI
app, ``apps/endpoint_app.py``), the checkpoint API called as an SDK would, what it
refuses, production mode, and a server killed around each endpoint transition.

The official JS SDK's durable endpoints are in ``tests/interop/test_js_endpoints.py``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepwise.protocol import RUN_COMPLETE_ID, hash_step_id, new_ulid
from support.harness import REPO, AppProcess, ServerProcess, Stack, wait_until

FUNCTIONS = 1  # the deferred function; the endpoints themselves never sync
SIGNING_KEY = "signkey-prod-" + "5e" * 32


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("endpoints")
    with Stack(tmp, "endpoint_app", server_args=["--retry-interval", "1"], functions=1) as s:
        yield s


def url(stack: Stack, path: str) -> str:
    return f"http://127.0.0.1:{stack.app.port}{path}"


def ledger(stack: Stack, kind: str, path: str) -> list[dict[str, Any]]:
    return stack.app.ledger_of(kind, path=path)


# ---- our SDK's durable endpoints ---------------------------------------------------------


def test_a_route_that_completes_in_its_request_answers_as_its_handler_did(
    stack: Stack,
) -> None:
    response = httpx.get(url(stack, "/sync"), timeout=30)
    assert response.status_code == 202, stack.logs()
    assert response.headers["x-my-header"] == "yes"
    assert response.json() == {"msg": "hello world"}
    entered = ledger(stack, "enter", "/sync")
    run_id = entered[0]["run_id"]
    # The handler ran again from the top after each step, in the request; never re-entered.
    assert not any(e["reentry"] for e in entered)
    assert [e["step"] for e in ledger(stack, "step", "/sync")] == ["a", "b"]
    run = stack.server.wait_for_run_end(run_id)
    assert run["status"] == "Completed"
    assert run["output"]["status"] == 202
    assert json.loads(run["output"]["body"]) == {"msg": "hello world"}
    kinds = [h["kind"] for h in stack.server.history(run_id)]
    assert kinds == ["RunStarted", "StepCompleted", "StepCompleted", "RunCompleted"]
    # Listed like any run, under its app and function (named by method and path).
    app_name = f"127.0.0.1:{stack.app.port}"
    listed = stack.server.http.get("/v1/runs", params={"function": f"{app_name}-get-sync"}).json()[
        "data"
    ]
    assert run_id in {r["run_id"] for r in listed}


def test_a_route_that_sleeps_goes_async_and_its_client_gets_the_response(stack: Stack) -> None:
    response = httpx.get(url(stack, "/async?q=7"), timeout=30)
    assert response.status_code == 302, stack.logs()
    output = httpx.get(response.headers["location"], timeout=60)
    assert (output.status_code, output.json()) == (200, {"msg": "hello world", "q": "7"})
    entered = ledger(stack, "enter", "/async")
    run_id = entered[0]["run_id"]
    assert entered[0]["reentry"] is False
    assert any(e["reentry"] and e["query"] == "q=7" for e in entered)
    assert [e["step"] for e in ledger(stack, "step", "/async")] == ["a", "b"]
    run = stack.server.wait_for_run_end(run_id)
    assert run["function_slug"] == f"127.0.0.1:{stack.app.port}-async-endpoint"


def test_a_def_route_with_fastapi_parameters_answers_with_a_token(stack: Stack) -> None:
    response = httpx.post(url(stack, "/orders/pen"), json={"qty": 2}, timeout=30)
    assert response.status_code == 200, stack.logs()
    answer = response.json()
    output = httpx.get(
        f"{stack.server.url}/v1/http/runs/{answer['run_id']}/output",
        params={"token": answer["token"]},
        timeout=60,
    )
    assert (output.status_code, output.text) == (201, "2 x pen = 6")
    assert output.headers["content-type"].startswith("text/plain")
    assert len(ledger(stack, "step", "/orders")) == 1


def test_a_failing_step_is_retried_by_the_server_within_the_route_budget(stack: Stack) -> None:
    response = httpx.get(url(stack, "/flaky"), timeout=30)
    assert response.status_code == 302, stack.logs()
    output = httpx.get(response.headers["location"], timeout=60)
    assert output.json() == {"result": "third time"}
    tries = ledger(stack, "step", "/flaky")
    assert [t["n"] for t in tries] == [0, 1, 2]
    kinds = [h["kind"] for h in stack.server.history(tries[0]["run_id"])]
    assert kinds.count("StepErrored") == 2 and kinds[-1] == "RunCompleted"


def test_a_handler_that_gives_up_fails_its_run_and_its_request(stack: Stack) -> None:
    response = httpx.get(url(stack, "/broken"), timeout=30)
    assert response.status_code == 500
    assert response.json() == {"name": "NonRetriableError", "message": "the handler gave up"}
    run_id = ledger(stack, "step", "/broken")[0]["run_id"]
    run = stack.server.wait_for_run_end(run_id)
    assert run["status"] == "Failed"
    assert run["output"]["message"] == "the handler gave up"


def test_a_route_defers_a_run_and_aborts_another(stack: Stack) -> None:
    response = httpx.get(url(stack, "/defer"), timeout=30)
    assert (response.status_code, response.json()) == (200, "deferred")
    run_id = ledger(stack, "step", "/defer")[0]["run_id"]
    [deferred] = wait_until(
        lambda: [e for e in stack.app.ledger_of("deferred") if run_id in e["parents"]],
        timeout=30,
        what="the deferred run",
    )
    assert deferred["data"] == {"from": "endpoint"}
    kinds = [h["kind"] for h in stack.server.history(run_id) if h["kind"].startswith("Defer")]
    assert kinds == ["DeferAdded", "DeferAdded", "DeferAborted", "DeferStarted"]


def test_a_plain_starlette_route_is_durable_too(stack: Stack) -> None:
    response = httpx.get(url(stack, "/starlette?v=9"), timeout=30)
    assert (response.status_code, response.text) == (200, "starlette 9")


def test_the_documented_example_runs_as_written(stack: Stack, tmp_path: Path) -> None:
    """docs/durable-endpoints.md's example, with only its port changed, on the server."""
    doc = (REPO / "docs" / "durable-endpoints.md").read_text()
    [code] = re.findall(r"<!-- example: durable-endpoint -->\n```python\n(.*?)```", doc, re.DOTALL)
    app = AppProcess(
        tmp_path,
        "endpoint_app",
        server_url=stack.server.url,
        extra_env={"INNGEST_DEV": stack.server.url},
    )
    assert code.count("8000") == 1
    source = tmp_path / "durable_endpoint_example.py"
    source.write_text(code.replace("8000", str(app.port)))
    app.args = [sys.executable, str(source)]
    app.start()
    try:
        base = f"http://127.0.0.1:{app.port}"
        wait_until(lambda: _answers(f"{base}/docs"), timeout=20, what="the example app")
        response = httpx.post(f"{base}/orders/pen", follow_redirects=True, timeout=60)
        assert (response.status_code, response.json()) == (
            200,
            {"receipt": "charged 3 for one pen"},
        ), app.log()
        assert len(response.history) == 1 and response.history[0].status_code == 302
    finally:
        app.stop()


def _answers(address: str) -> bool:
    try:
        return httpx.get(address, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# ---- the API as an SDK calls it, and what it refuses -------------------------------------


def http_request_event(domain: str, path: str = "/x", **data: str) -> dict[str, Any]:
    fields = {
        "content_type": "",
        "domain": domain,
        "ip": "",
        "method": "GET",
        "path": path,
        "query_params": "",
        "body": "",
        "fn": "",
        **data,
    }
    return {"name": "inngest/http.request", "data": fields}


def step_run(name: str, data: Any) -> dict[str, Any]:
    return {
        "id": hash_step_id(name),
        "op": "StepRun",
        "name": name,
        "displayName": name,
        "data": data,
        "userland": {"id": name},
    }


def start_body(domain: str, path: str, *steps: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "run_id": new_ulid(),
        "event": http_request_event(domain, path),
        "steps": list(steps),
        "ts": 0,
        "request_version": 2,
        "retries": 3,
        **more,
    }


def counts(server: ServerProcess) -> tuple[Any, ...]:
    return tuple(
        server.query(f"SELECT count(*) FROM {table}")[0][0]
        for table in ("runs", "events", "apps", "functions", "endpoint_runs", "steps", "jobs")
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"event": {}}, 400, "invalid_checkpoint"),  # no run id
        ({"run_id": "not-a-ulid", "event": {}}, 400, "invalid_id"),
        ({"run_id": "ULID", "event": {"name": "other/event", "data": {}}}, 400, "invalid_endpoint"),
        ({"run_id": "ULID", "event": {"data": "text"}}, 400, "invalid_endpoint"),
        ({"run_id": "ULID", "event": http_request_event("ftp://x")}, 400, "invalid_endpoint"),
        (
            {"run_id": "ULID", "event": http_request_event("http://h", path="no-slash")},
            400,
            "invalid_endpoint",
        ),
        (
            {"run_id": "ULID", "event": http_request_event("http://h", method="G ET")},
            400,
            "invalid_endpoint",
        ),
        (
            {"run_id": "ULID", "event": http_request_event("http://h"), "retries": 99},
            400,
            "invalid_endpoint",
        ),
        (
            {"run_id": "ULID", "event": http_request_event("http://h"), "steps": [{"op": 5}]},
            400,
            "invalid_checkpoint",
        ),
        (
            {"run_id": "ULID", "event": http_request_event("http://h"), "request_version": 7},
            400,
            "invalid_checkpoint",
        ),
    ],
    ids=[
        "no-run-id",
        "bad-run-id",
        "other-event",
        "data-not-object",
        "bad-domain",
        "bad-path",
        "bad-method",
        "too-many-retries",
        "bad-op",
        "bad-version",
    ],
)
def test_a_bad_start_is_refused_whole(
    stack: Stack, body: dict[str, Any], status: int, code: str
) -> None:
    before = counts(stack.server)
    if body.get("run_id") == "ULID":
        body = {**body, "run_id": new_ulid()}
    answer = stack.server.http.post("/v1/checkpoint", json=body)
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    assert counts(stack.server) == before


# Fuzzed starts: near-valid bodies. Their ops are only ones that keep the run in its
# request (nothing then re-enters a handler that is not there, in the background).
_text = st.text(max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_op = st.fixed_dictionaries(
    {
        "id": st.sampled_from([hash_step_id("a"), RUN_COMPLETE_ID, "", "x"]),
        "op": st.sampled_from(["StepRun", "RunComplete", "DeferAdd", "Nope", 5, None]),
        "data": _json,
    },
    optional={"name": _text, "opts": st.dictionaries(_text, _json, max_size=2) | _json},
)
_data = st.fixed_dictionaries(
    {},
    optional={
        "domain": st.sampled_from(["http://127.0.0.1:9", "https://h", "ftp://x", "", "h"]) | _json,
        "path": st.sampled_from(["/a", "/", "a", "/a b"]) | _json,
        "method": st.sampled_from(["GET", "post", "G T", ""]) | _json,
        "query_params": _text | _json,
        "body": _text | _json,
        "content_type": _text,
        "fn": _text,
    },
)
_starts = st.fixed_dictionaries(
    {"run_id": st.sampled_from(["ULID", "nope", ""]) | _json},
    optional={
        "event": st.fixed_dictionaries(
            {"data": _data | _json},
            optional={"name": st.sampled_from(["inngest/http.request", "x/y"]) | _json},
        )
        | _json,
        "steps": st.lists(_op, max_size=3) | _json,
        "retries": st.integers(-3, 25) | _json,
        "request_version": st.sampled_from([2, 1, -1, 0, 7]) | _json,
        "ts": _json,
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_starts)
def test_fuzzed_starts_are_answered_and_a_refused_one_writes_nothing(
    stack: Stack, body: dict[str, Any]
) -> None:
    if body.get("run_id") == "ULID":
        body = {**body, "run_id": new_ulid()}
    before = counts(stack.server)
    answer = stack.server.http.post("/v1/checkpoint", json=body)
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert isinstance(answer.json()["code"], str)
        assert counts(stack.server) == before


def test_a_start_repeated_gets_the_same_answer_and_a_taken_run_id_a_409(stack: Stack) -> None:
    body = start_body("http://127.0.0.1:9", "/repeat", step_run("a", 1))
    first = stack.server.http.post("/v1/checkpoint", json=body)
    assert first.status_code == 200, first.text
    data = first.json()["data"]
    assert set(data) == {"fn_id", "app_id", "run_id", "token", "realtime_token"}
    assert all(isinstance(v, str) and v for v in data.values())
    before = counts(stack.server)
    again = stack.server.http.post("/v1/checkpoint", json={**body, "ts": 1})
    assert again.json() == first.json()
    assert counts(stack.server) == before
    other = {**body, "event": http_request_event("http://127.0.0.1:9", "/elsewhere")}
    taken = stack.server.http.post("/v1/checkpoint", json=other)
    assert (taken.status_code, taken.json()["code"]) == (409, "run_exists")


def test_later_checkpoints_check_their_run(stack: Stack) -> None:
    http = stack.server.http
    body = start_body("http://127.0.0.1:9", "/checked", step_run("a", 1))
    run_id = body["run_id"]
    assert http.post("/v1/checkpoint", json=body).status_code == 200
    steps = f"/v1/checkpoint/{run_id}/steps"
    scored = {
        **step_run("b", 2),
        "metadata": [
            {"kind": "userland.default", "scope": "step", "op": "merge", "values": {"ok": 1}},
            {"kind": "inngest.score", "scope": "run", "op": "merge", "values": {"q": {"value": 1}}},
        ],
    }
    answer = http.post(steps, json={"run_id": run_id, "steps": [scored]})
    assert answer.json() == {"run_id": run_id, "saved": True}
    # Metadata on a step's op is kept with its result, as for any run.
    shown = [
        (h["step_id"], h["metadata"]["scope"], h["metadata"]["kind"], h["metadata"]["values"])
        for h in stack.server.history(run_id)
        if h["kind"] == "Metadata"
    ]
    assert shown == [
        (hash_step_id("b"), "step", "userland.default", {"ok": 1}),
        (hash_step_id("b"), "run", "inngest.score", {"q": {"value": 1}}),
    ]
    assert http.get(f"/v0/runs/{run_id}/actions").json() == {
        hash_step_id("a"): {"data": 1},
        hash_step_id("b"): {"data": 2},
    }
    mismatch = http.post(steps, json={"run_id": new_ulid(), "steps": []})
    assert (mismatch.status_code, mismatch.json()["code"]) == (400, "run_id_mismatch")
    unknown = http.post(f"/v1/checkpoint/{new_ulid()}/steps", json={"steps": []})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "run_not_found")
    bad = http.post(steps, json={"steps": [{"id": "x", "op": 3}]})
    assert bad.status_code == 400
    assert http.post(steps, content=b"not json").json()["code"] == "invalid_json"
    # An ordinary run is not a durable endpoint's.
    invoked = http.post("/v1/functions/endpoints-later/invoke", json={"data": {}})
    ordinary = invoked.json()["data"]["run_id"]
    refused = http.post(f"/v1/checkpoint/{ordinary}/steps", json={"steps": [step_run("x", 1)]})
    assert (refused.status_code, refused.json()["code"]) == (409, "not_endpoint")

    # Once the run ended, a checkpoint (a retry of the last, say) saves nothing but is
    # not an error: the handler still answers its client.
    result = {"status": 200, "headers": {}, "body": "1"}
    done = {"id": RUN_COMPLETE_ID, "op": "RunComplete", "data": result}
    assert http.post(steps, json={"steps": [done]}).json()["saved"] is True
    assert stack.server.wait_for_run_end(run_id)["status"] == "Completed"
    late = http.post(steps, json={"steps": [step_run("c", 3)]})
    assert late.json() == {"run_id": run_id, "saved": False}
    assert hash_step_id("c") not in http.get(f"/v0/runs/{run_id}/actions").json()


def test_an_endpoints_run_is_started_only_by_its_handler(stack: Stack) -> None:
    """Neither a rerun nor an invoke can start one: the server has no request to re-enter."""
    http = stack.server.http
    body = start_body("http://127.0.0.1:9", "/only", step_run("a", 1))
    data = http.post("/v1/checkpoint", json=body).json()["data"]
    rerun = http.post(f"/v1/runs/{data['run_id']}/rerun")
    assert (rerun.status_code, rerun.json()["code"]) == (409, "endpoint_run")
    invoke = http.post("/v1/functions/127.0.0.1:9-get-only/invoke", json={})
    assert (invoke.status_code, invoke.json()["code"]) == (409, "endpoint_function")


def test_the_stream_routes_check_their_channel_and_token(stack: Stack) -> None:
    http = stack.server.http
    assert http.post("/v1/realtime/publish/tee", content=b"x").json()["code"] == "invalid_channel"
    missing = http.post(f"/v1/realtime/publish/tee?channel={new_ulid()}", content=b"x")
    assert missing.status_code == 404
    for token in ("", "nope", f"{new_ulid()}.secret"):
        assert http.get("/v1/realtime/sse", params={"token": token}).status_code == 401

    body = start_body("http://127.0.0.1:9", "/streamed", step_run("a", 1))
    data = http.post("/v1/checkpoint", json=body).json()["data"]
    frames = [b"event: one\ndata: 1\n\n", b"event: two\ndata: 2\n\n"]
    tee = http.post(
        f"/v1/realtime/publish/tee?channel={body['run_id']}",
        content=frames[0] + frames[1][:7],  # a frame cut in two: kept whole, in order
    )
    assert tee.json() == {"run_id": body["run_id"], "relayed": len(frames[0]) + 7}
    http.post(f"/v1/realtime/publish/tee?channel={body['run_id']}", content=frames[1][7:])
    final = b'event: inngest.response\ndata: {"status":"succeeded"}\n\n'
    http.post(f"/v1/realtime/publish/tee?channel={body['run_id']}", content=final)
    with httpx.stream(
        "GET", f"{stack.server.url}/v1/realtime/sse", params={"token": data["realtime_token"]}
    ) as sse:
        assert sse.read() == frames[0] + frames[1] + final


# ---- production --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def production(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("endpoints-production"),
        "endpoint_app",
        app_env={"STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY},
        server_args=["--retry-interval", "1"],
        functions=FUNCTIONS,
    )
    s.server.production(signing_key=SIGNING_KEY, event_key="test-event-key")
    with s:
        yield s


def test_in_production_checkpoints_need_the_key_and_reentries_are_signed(
    production: Stack,
) -> None:
    response = httpx.get(url(production, "/async?q=1"), timeout=30)
    assert response.status_code == 302, production.logs()
    output = httpx.get(response.headers["location"], timeout=60)
    assert output.json() == {"msg": "hello world", "q": "1"}
    # Without the key the API refuses; the client's token reads the output without it.
    anonymous = httpx.post(
        f"{production.server.url}/v1/checkpoint",
        json=start_body("http://127.0.0.1:9", "/x"),
    )
    assert anonymous.status_code == 401
    # A re-entry that does not carry the server's signature is refused by the app.
    forged = httpx.get(
        url(production, "/async"),
        headers={"x-run-id": new_ulid(), "x-inngest-signature": "t=1&s=00"},
    )
    assert forged.status_code == 401


# ---- crashes -----------------------------------------------------------------------------


def test_a_server_killed_around_an_endpoint_checkpoint_loses_nothing_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    """Acting as the SDK, post the start and then the checkpoint that goes async, with the
    server killed just before each commit, and just after the second: after a restart the
    SDK's retry of the same checkpoint is saved once, and the server finishes the run by
    re-entering the route (``/async`` of ``apps/endpoint_app.py``)."""
    stack = Stack(tmp_path, "endpoint_app", server_args=["--retry-interval", "1"], functions=1)
    server = stack.server
    with stack:
        domain = f"http://127.0.0.1:{stack.app.port}"
        body = start_body(domain, "/async", step_run("a", "hello"))
        body["event"]["data"]["query_params"] = "q=1"
        run_id = body["run_id"]
        sleep = {"id": hash_step_id("nap"), "op": "Sleep", "name": "1s", "displayName": "nap"}
        steps = {"run_id": run_id, "steps": [sleep]}

        def crash_at(point: str, path: str, payload: dict[str, Any]) -> None:
            server.stop()
            server.env["STEPWISE_FAULTS"] = f"{point}=crash"
            server.start_and_wait()
            with pytest.raises(httpx.TransportError):
                server.http.post(path, json=payload)
            proc = server.proc
            assert proc is not None
            wait_until(lambda: proc.poll() is not None, timeout=10, what=f"the crash at {point}")
            del server.env["STEPWISE_FAULTS"]

        crash_at("endpoint.start", "/v1/checkpoint", body)
        assert server.query("SELECT count(*) FROM runs WHERE id = ?", (run_id,)) == [(0,)]
        assert server.query("SELECT count(*) FROM endpoint_runs") == [(0,)]
        assert server.query("SELECT count(*) FROM events WHERE name = 'inngest/http.request'") == [
            (0,)
        ]
        assert server.query("SELECT count(*) FROM apps WHERE framework = 'endpoint'") == [(0,)]
        server.start_and_wait()
        assert server.http.post("/v1/checkpoint", json=body).status_code == 200

        crash_at("endpoint.steps", f"/v1/checkpoint/{run_id}/steps", steps)
        # Killed before the commit: no wake-up, nothing of the sleep.
        assert server.query("SELECT count(*) FROM jobs WHERE run_id = ?", (run_id,)) == [(0,)]
        kinds = [k for (k,) in server.query("SELECT kind FROM history WHERE run_id = ?", (run_id,))]
        assert kinds == ["RunStarted", "StepCompleted"]

        crash_at("endpoint.steps.saved", f"/v1/checkpoint/{run_id}/steps", steps)
        # Killed after the commit, before the answer: the sleep and its wake-up are stored.
        assert server.query("SELECT kind, step_id FROM jobs WHERE run_id = ?", (run_id,)) == [
            ("wake", hash_step_id("nap"))
        ]

        server.start_and_wait()
        # The SDK, which had no answer, sends the same checkpoint again: saved once.
        again = server.http.post(f"/v1/checkpoint/{run_id}/steps", json=steps)
        assert again.json()["saved"] is True
        run = server.wait_for_run_end(run_id)
        assert run["status"] == "Completed", stack.logs()
        assert json.loads(run["output"]["body"]) == {"msg": "hello world", "q": "1"}
        kinds = [h["kind"] for h in server.history(run_id)]
        assert kinds.count("SleepStarted") == 1 and kinds.count("RunCompleted") == 1
        # Step "a" came from the checkpoint: the route re-entered ran only "b", once.
        assert [e["step"] for e in ledger(stack, "step", "/async")] == ["b"]
