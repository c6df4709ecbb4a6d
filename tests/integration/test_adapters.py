"""The adapter matrix: every framework adapter serves the same scenarios to the real server.

For each adapter, one server (``stepwise start``: production mode, so every call and every
reply is signed) and one app (``apps/adapter_app.py``) served by that framework's adapter
under a real HTTP server (uvicorn, Werkzeug, wsgiref, aiohttp, Tornado, or the Lambda
shim of ``support/lambda_shim.py`` for the three Lambda event shapes). The server syncs the
app through its PUT, so the URL each adapter rebuilds from its request is checked too.

Each app has a second endpoint, ``/api/streamed``, another app whose replies stream
(``streaming="force"``; on Lambda, which cannot stream, ``"allow"``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepwise.protocol import canonical_json, sign, verify
from support.harness import REPO, AppProcess, ServerProcess, wait_until

# The adapters translate HTTP on the SDK's side; the store plays no part, so SQLite only.
pytestmark = pytest.mark.backends("sqlite")

SIGNING_KEY = "signkey-prod-" + "5e" * 32
WRONG_KEY = "signkey-prod-" + "00" * 32
EVENT_KEY = "test-event-key"
FUNCTIONS = 10  # per app: see apps/adapter_app.py

# Adapter (as adapter_app.py names it) -> the framework its replies name.
ADAPTERS = {
    "starlette": "starlette",
    "fastapi": "fastapi",
    "asgi": "asgi",
    "wsgi": "wsgi",
    "flask": "flask",
    "quart": "quart",
    "litestar": "litestar",
    "django-wsgi": "django",
    "django-asgi": "django",
    "aiohttp": "aiohttp",
    "tornado": "tornado",
    "lambda-apigw-v1": "aws-lambda",
    "lambda-apigw-v2": "aws-lambda",
    "lambda-function-url": "aws-lambda",
}

# Scenario -> (event data, the run's output).
SCENARIOS: dict[str, tuple[dict[str, Any], Any]] = {
    "steps": ({"n": 1}, {"a": 2, "b": 4}),
    "other-style": ({"n": 5}, {"a": 6, "b": 12}),
    "sleep": ({}, ["before", "after"]),
    "retry": ({}, "ok on attempt 1"),
    "parallel": ({}, [0, 10, 20]),
    "invoke": ({}, 49),
    "big-state": ({}, 1_200_000),
    "streamed": ({"n": 3}, {"a": 4, "b": 8}),  # served by the streaming endpoint
}
RUNS = {**SCENARIOS, "wait": ({"id": "order-1"}, None), "failure": ({}, None)}


@dataclass
class Matrix:
    """One adapter's app, its server, and the runs started as soon as the app synced."""

    adapter: str
    server: ServerProcess
    app: AppProcess
    started: dict[str, str]  # scenario -> its event's ID

    def send(self, name: str, data: dict[str, Any]) -> str:
        return self.server.send(f"matrix/{self.adapter}/{name}", data)

    def logs(self) -> str:
        return f"--- server ---\n{self.server.log()}\n--- app ---\n{self.app.log()}"


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for every adapter a worker runs; ``POST /v1/apps`` adds each app."""
    s = ServerProcess(
        tmp_path_factory.mktemp("adapters"),
        sdk_urls=[],
        # Loopback apps are refused in production unless allowed.
        extra_args=["--retry-interval", "1", "--no-poll", "--outbound-allow", "127.0.0.1/32"],
    )
    s.production(signing_key=SIGNING_KEY, event_key=EVENT_KEY)
    s.start_and_wait()
    yield s
    s.close()


# With ``--dist loadgroup`` each adapter's tests stay on one worker, which starts its app
# once; plain ``load`` may split them, and each worker then starts its own.
@pytest.fixture(
    scope="module",
    params=[pytest.param(a, marks=pytest.mark.xdist_group(f"adapter-{a}")) for a in ADAPTERS],
)
def matrix(
    request: pytest.FixtureRequest,
    server: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Matrix]:
    adapter: str = request.param
    app = AppProcess(
        tmp_path_factory.mktemp(adapter),
        "adapter_app",
        server_url=server.url,
        extra_env={
            "STEPWISE_TEST_ADAPTER": adapter,
            "STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY,
            "PYTHONPATH": str(REPO / "tests"),  # the Lambda shim
        },
    )
    try:
        app.start_and_wait()
        # The server asks the app to sync (PUT); the app answers in band or registers.
        for url in (app.url, streamed_url(app)):
            added = server.http.post("/v1/apps", json={"url": url})
            assert added.status_code == 201, added.text
        # Every run starts now, so that their sleeps and retries overlap; each test then
        # waits for its own.
        matrix = Matrix(adapter, server, app, {})
        matrix.started = {name: matrix.send(name, data) for name, (data, _) in RUNS.items()}
        yield matrix
    finally:
        app.stop()


def streamed_url(app: AppProcess) -> str:
    """The app's second endpoint: another app ID, whose replies stream (Lambda's cannot)."""
    return app.url.replace("/api/inngest", "/api/streamed")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_completes(matrix: Matrix, scenario: str) -> None:
    run = matrix.server.wait_for_run(matrix.started[scenario])
    assert run["status"] == "Completed", matrix.logs()
    assert run["output"] == SCENARIOS[scenario][1]


def test_wait_for_event_resumes_on_the_matching_event(matrix: Matrix) -> None:
    def waiting() -> bool:
        runs = matrix.server.runs(matrix.started["wait"])
        if not runs:
            return False
        sql = "SELECT count(*) FROM pauses WHERE kind = 'wait' AND run_id = ?"
        [(count,)] = matrix.server.query(sql, (runs[0]["run_id"],))
        return int(count) == 1

    wait_until(waiting, timeout=20, what="the run to wait for its event")
    matrix.send("approved", {"id": "order-2", "by": "someone else"})
    matrix.send("approved", {"id": "order-1", "by": "alice"})
    run = matrix.server.wait_for_run(matrix.started["wait"])
    assert run["status"] == "Completed", matrix.logs()
    assert run["output"] == {"id": "order-1", "by": "alice"}


def test_a_non_retriable_error_fails_the_run(matrix: Matrix) -> None:
    run = matrix.server.wait_for_run(matrix.started["failure"])
    assert run["status"] == "Failed", matrix.logs()
    assert "card declined" in json.dumps(run["output"])


def test_the_app_synced_with_its_own_url(matrix: Matrix) -> None:
    framework = ADAPTERS[matrix.adapter]
    app = matrix.server.http.get(f"/v1/apps/matrix-{matrix.adapter}").json()["data"]
    assert (app["url"], app["framework"], len(app["functions"])) == (
        matrix.app.url,
        framework,
        FUNCTIONS,
    )
    app = matrix.server.http.get(f"/v1/apps/matrix-{matrix.adapter}-streamed").json()["data"]
    assert (app["url"], app["framework"]) == (streamed_url(matrix.app), framework)


def call(
    matrix: Matrix,
    *,
    endpoint: str = "",
    fn: str = "steps",
    run_id: str = "01J0000000000000000000RUN1",
) -> tuple[str, bytes]:
    """A run's first call, as the server would make it: its URL and its (canonical) body."""
    event = {
        "name": f"matrix/{matrix.adapter}/{fn}",
        "data": {"n": 1},
        "id": "01J000000000000000000EVENT",
    }
    body = {
        "event": event,
        "events": [event],
        "steps": {},
        "ctx": {"run_id": run_id, "attempt": 0, "stack": {"stack": [], "current": 0}},
        "version": 2,
    }
    app_url = streamed_url(matrix.app) if endpoint == "streamed" else matrix.app.url
    fn_id = f"matrix-{matrix.adapter}{'-streamed' if endpoint else ''}-{fn}"
    return f"{app_url}?fnId={fn_id}&stepId=step", canonical_json(body)


def test_a_streamed_reply_opens_before_its_step_ends(matrix: Matrix) -> None:
    """The opening 201 and keep-alive spaces reach the server while the step still runs;
    the last chunk is the real reply, signed over its own body."""
    url, body = call(matrix, endpoint="streamed", fn="gated")
    gate = Path(f"{matrix.app.ledger}.01J0000000000000000000RUN1.gate")
    headers = {"x-inngest-signature": sign(body, SIGNING_KEY)}
    if matrix.adapter.startswith("lambda-"):  # a buffered Lambda answers plainly
        gate.touch()
        reply = httpx.post(url, content=body, headers=headers, timeout=30)
        assert reply.status_code == 206, reply.text
        assert reply.json()[0]["data"] == "through"
        return
    with httpx.stream("POST", url, content=body, headers=headers, timeout=30) as streamed:
        assert streamed.status_code == 201
        chunks = streamed.iter_raw()
        opening = next(chunks)
        assert opening and not opening.strip(), "keep-alive spaces, the step blocked on its gate"
        gate.touch()
        final = json.loads(opening + b"".join(chunks))
    assert final["status"] == 206
    reply_body = final["body"].encode()
    verify(reply_body, final["headers"]["x-inngest-signature"], [SIGNING_KEY], canonicalize=False)
    [op] = json.loads(reply_body)
    assert (op["op"], op["data"]) == ("StepRun", "through")


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream"])
def test_a_signed_call_is_answered_with_a_signed_reply(matrix: Matrix, content_type: str) -> None:
    url, body = call(matrix)
    reply = httpx.post(
        url,
        content=body,
        headers={"x-inngest-signature": sign(body, SIGNING_KEY), "content-type": content_type},
    )
    assert reply.status_code == 206, reply.text
    [op] = reply.json()
    assert (op["op"], op["displayName"], op["data"]) == ("StepRun", "a", 2)
    verify(reply.content, reply.headers["x-inngest-signature"], [SIGNING_KEY], canonicalize=False)
    assert reply.headers["x-inngest-framework"] == ADAPTERS[matrix.adapter]


def test_unsigned_forged_and_tampered_calls_are_refused(matrix: Matrix) -> None:
    url, body = call(matrix)
    tampered = body.replace(b'"n":1', b'"n":2')
    assert tampered != body
    for headers, content in [
        ({}, body),
        ({"x-inngest-signature": sign(body, WRONG_KEY)}, body),
        ({"x-inngest-signature": sign(body, SIGNING_KEY)}, tampered),
    ]:
        reply = httpx.post(url, content=content, headers=headers)
        assert reply.status_code == 401, reply.text
        assert reply.json()["code"] == "sig_verification_failed"


def test_introspection_authenticates_only_a_signed_request(matrix: Matrix) -> None:
    anonymous = httpx.get(matrix.app.url).json()
    assert anonymous["mode"] == "cloud" and "authentication_succeeded" not in anonymous
    signed = httpx.get(matrix.app.url, headers={"x-inngest-signature": sign(b"", SIGNING_KEY)})
    body = signed.json()
    assert body["authentication_succeeded"] is True
    assert body["framework"] == ADAPTERS[matrix.adapter]
    assert body["function_count"] == FUNCTIONS
    verify(signed.content, signed.headers["x-inngest-signature"], [SIGNING_KEY], canonicalize=False)
