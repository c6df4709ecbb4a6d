"""``stepwise start``: requests to apps are signed, the SDK verifies them, every API needs a key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stepwise.protocol import canonical_json, sign, verify
from support.harness import Stack

SIGNING_KEY = "signkey-prod-" + "3c" * 32
EVENT_KEY = "test-event-key"


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("production"),
        "durable_app",
        app_env={"STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY},
        server_args=["--retry-interval", "1"],
        functions=8,
    )
    s.server.production(signing_key=SIGNING_KEY, event_key=EVENT_KEY)
    with s:
        yield s


def test_signed_runs_complete_end_to_end(stack: Stack) -> None:
    event_id = stack.server.send("test/three", {"n": 1})
    run = stack.server.wait_for_run(event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"a": 2, "b": 4, "c": "done"}


def test_send_event_step_uses_the_event_key(stack: Stack) -> None:
    event_id = stack.server.send("test/sync")
    run = stack.server.wait_for_run(event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"value": 42, "sent": 1}


def test_the_app_refuses_unsigned_and_forged_calls(stack: Stack) -> None:
    body = json.dumps(
        {"event": {"name": "test/three", "data": {"n": 1}}, "steps": {}, "ctx": {"run_id": "x"}}
    ).encode()
    url = f"{stack.app.url}?fnId=durable-three-steps&stepId=step"
    unsigned = httpx.post(url, content=body)
    assert unsigned.status_code == 401
    forged = httpx.post(
        url, content=body, headers={"x-inngest-signature": sign(body, "signkey-prod-" + "00" * 32)}
    )
    assert forged.status_code == 401


@pytest.mark.parametrize(
    ("query", "body", "status"),
    [
        ("probe=trust", {"probe": True}, 200),
        ("probe=nonsense", {"probe": True}, 400),
        ("stepId=step", {"ctx": {}}, 400),  # no fnId
        ("fnId=durable-nope&stepId=step", {"ctx": {}}, 404),
        ("fnId=durable-three-steps&stepId=step", {"event": 1}, 400),  # not a call request
    ],
    ids=["trust-probe", "unknown-probe", "no-function-id", "unknown-function", "malformed"],
)
def test_the_app_signs_every_reply_to_a_verified_call(
    stack: Stack, query: str, body: dict[str, object], status: int
) -> None:
    """The server acts only on signed replies, so even a refusal must carry a signature."""
    raw = canonical_json(body)
    reply = httpx.post(
        f"{stack.app.url}?{query}",
        content=raw,
        headers={"x-inngest-signature": sign(raw, SIGNING_KEY), "content-type": "application/json"},
    )
    assert reply.status_code == status, reply.text
    verify(
        reply.content, reply.headers.get("x-inngest-signature"), [SIGNING_KEY], canonicalize=False
    )


def test_the_server_refuses_events_with_a_wrong_key(stack: Stack) -> None:
    response = stack.server.http.post("/e/wrong", content=b'{"name": "test/three"}')
    assert response.status_code == 401
    assert response.json()["code"] == "event_key_not_found"


def test_api_needs_the_signing_key(stack: Stack, tmp_path: Path) -> None:
    anonymous = httpx.get(f"{stack.server.url}/v1/events")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthorized"
    assert stack.server.http.get("/v1/events").status_code == 200
    # The run listing too, before it even reads its parameters.
    anonymous = httpx.get(f"{stack.server.url}/v1/runs", params={"limit": "0"})
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthorized"
    assert stack.server.http.get("/v1/runs").status_code == 200


def test_metrics_need_the_signing_key(stack: Stack) -> None:
    for headers in ({}, {"authorization": "Bearer signkey-prod-wrong"}):
        refused = httpx.get(f"{stack.server.url}/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthorized"
        assert "stepwise_" not in refused.text
    allowed = stack.server.http.get("/metrics")
    assert allowed.status_code == 200
    assert "# TYPE stepwise_runs_started_total counter" in allowed.text


def test_the_dashboard_is_not_served_without_a_login(stack: Stack) -> None:
    # No page shows a production server's runs to anyone who has not logged in.
    for path in (
        "/",
        "/runs",
        "/events",
        "/functions",
        "/apps",
        "/runs/01JABCDEFGHJKMNPQRSTVWXYZ0",
    ):
        response = httpx.get(stack.server.url + path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path
        login = httpx.get(stack.server.url + response.headers["location"])
        assert login.status_code == 200
        assert 'name="password"' in login.text
