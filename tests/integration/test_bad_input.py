"""Bad input gets a 4xx JSON error with a stable code, stores no bad event, and the server lives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from stepwise.protocol import sign
from support.harness import ServerProcess

SIGNING_KEY = "signkey-test-0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("bad-input"), sdk_urls=[])
    proc.start_and_wait()
    yield proc
    proc.close()


def event_count(server: ServerProcess) -> int:
    return len(server.http.get("/v1/events", params={"limit": 100}).json()["data"])


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"]
    assert body["status"] == status
    return body


def post_events(server: ServerProcess, raw: bytes | str) -> httpx.Response:
    return server.http.post("/e/key", content=raw, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "empty_body"),
        (b"42", 400, "invalid_event"),
        (json.dumps({"data": {}}), 400, "missing_event_name"),
        (json.dumps({"name": 5}), 400, "missing_event_name"),
        (json.dumps({"name": "a", "data": [1, 2]}), 400, "invalid_event_data"),
        (json.dumps({"name": "a", "user": "bob"}), 400, "invalid_event_user"),
        (json.dumps({"name": "a", "ts": "yesterday"}), 400, "invalid_event_ts"),
        (json.dumps({"name": "a", "ts": 1}), 400, "invalid_event_ts"),
        (json.dumps({"name": "a", "id": 12}), 400, "invalid_event_id"),
        (json.dumps({"name": "a", "v": 2}), 400, "invalid_event_version"),
        (json.dumps({"name": "x" * 600}), 400, "event_name_too_long"),
        # PostgreSQL cannot store NUL in text: refused on every backend alike.
        (json.dumps({"name": "nul\x00byte"}), 400, "invalid_event_name"),
        (json.dumps({"name": "a", "id": "a\x00b"}), 400, "invalid_event_id"),
        (json.dumps({"name": "a", "v": "1\x00"}), 400, "invalid_event_version"),
        (json.dumps({"name": "inngest/function.finished"}), 400, "reserved_event_name"),
        # Over the dev server's limit: 3 MB, the reference's absolute one.
        (json.dumps({"name": "big", "data": {"blob": "x" * 3 * 2**20}}), 413, "event_too_large"),
    ],
)
def test_bad_events_are_refused_and_nothing_is_stored(
    server: ServerProcess, body: bytes | str, status: int, code: str
) -> None:
    before = event_count(server)
    response = post_events(server, body)
    body_json = assert_error(response, status, code)
    assert body_json["ids"] == []
    assert event_count(server) == before


def test_a_bad_event_in_a_batch_stores_it_and_those_after_it_not(server: ServerProcess) -> None:
    before = event_count(server)
    batch = [{"name": "ok/one"}, {"name": "ok/two"}, {"name": ""}, {"name": "ok/three"}]
    body = assert_error(post_events(server, json.dumps(batch)), 400, "missing_event_name")
    # As the reference does: the events before the bad one are stored and named.
    stored = server.http.get("/v1/events", params={"limit": 100}).json()["data"]
    names = {e["internal_id"]: e["name"] for e in stored}
    assert [names.get(i) for i in body["ids"]] == ["ok/one", "ok/two"]
    assert "ok/three" not in names.values()
    assert event_count(server) == before + 2


def test_good_batch_after_bad_input_is_stored(server: ServerProcess) -> None:
    before = event_count(server)
    response = post_events(
        server, json.dumps([{"name": "ok/one"}, {"name": "ok/two", "data": {"x": 1}}])
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == 200 and len(body["ids"]) == 2
    assert event_count(server) == before + 2


def register(server: ServerProcess, body: Any) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return server.http.post(
        "/fn/register", content=raw, headers={"content-type": "application/json"}
    )


def fn(fn_id: str = "app-fn", **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "id": fn_id,
        "name": fn_id,
        "triggers": [{"event": "x/y"}],
        "steps": {
            "step": {
                "id": "step",
                "name": "step",
                "runtime": {
                    "type": "http",
                    "url": "http://127.0.0.1:9/api?fnId=app-fn&stepId=step",
                },
            }
        },
    }
    config.update(overrides)
    return config


def app_body(functions: list[Any], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "url": "http://127.0.0.1:9/api",
        "appName": "bad-app",
        "sdk": "py:v0",
        "v": "0.1",
        "framework": "test",
        "functions": functions,
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{nope", "invalid_json"),
        ([1, 2], "invalid_app"),
        (app_body([fn()], appName=""), "invalid_app"),
        (app_body([fn()], url="not a url"), "invalid_app"),
        (app_body("functions"), "invalid_app"),
        (app_body([fn(steps={})]), "invalid_function"),
        (app_body([fn(id="")]), "invalid_function"),
        (app_body([fn(triggers=[{"event": f"e/{i}"} for i in range(11)])]), "too_many_triggers"),
        (app_body([fn(triggers=[{"cron": "every tuesday"}])]), "invalid_cron"),
        (
            app_body([fn(triggers=[{"event": "a", "expression": "event.data.x >"}])]),
            "invalid_expression",
        ),
        (app_body([fn(triggers=[{"nothing": True}])]), "invalid_trigger"),
        (app_body([fn(), fn()]), "duplicate_function"),
    ],
)
def test_bad_registrations_are_refused_and_nothing_is_stored(
    server: ServerProcess, body: Any, code: str
) -> None:
    assert_error(register(server, body), 400, code)
    assert server.http.get("/dev").json()["functions"] == []


def test_server_kind_mismatch_is_refused(server: ServerProcess) -> None:
    response = server.http.post(
        "/fn/register",
        content=json.dumps(app_body([fn()])),
        headers={"content-type": "application/json", "x-inngest-expected-server-kind": "cloud"},
    )
    assert_error(response, 400, "server_kind_mismatch")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/runs/not-a-ulid", 400, "invalid_id"),
        ("/v1/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV", 404, "run_not_found"),
        ("/v1/events/01ARZ3NDEKTSV4RRFFQ69G5FAV", 404, "event_not_found"),
        ("/v1/events/01ARZ3NDEKTSV4RRFFQ69G5FAV/runs", 404, "event_not_found"),
        ("/v1/events?limit=abc", 400, "invalid_parameter"),
        ("/v1/events?limit=100000", 400, "invalid_parameter"),
        ("/v1/events?received_after=yesterday", 400, "invalid_parameter"),
        ("/v0/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV/actions", 404, "run_not_found"),
        ("/no/such/path", 404, "not_found"),
        ("/v1/apps/no-such-app/functions", 404, "app_not_found"),
    ],
)
def test_bad_rest_requests(server: ServerProcess, path: str, status: int, code: str) -> None:
    assert_error(server.http.get(path), status, code)


def test_server_still_serves_after_bad_input(server: ServerProcess) -> None:
    assert server.http.get("/health").json() == {"status": "ok"}
    assert server.proc is not None and server.proc.poll() is None
    assert "Traceback" not in server.log()


@pytest.fixture(scope="module")
def prod_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("prod")
    proc = ServerProcess(tmp, sdk_urls=[])
    proc.args[proc.args.index("dev")] = "start"
    proc.args.remove("--no-discovery")
    proc.args += ["--signing-key", SIGNING_KEY, "--event-key", "secret-event-key"]
    proc.start_and_wait()
    yield proc
    proc.close()


def test_production_requires_event_key(prod_server: ServerProcess) -> None:
    response = prod_server.http.post("/e/wrong-key", content=b'{"name": "a"}')
    assert_error(response, 401, "event_key_not_found")
    ok = prod_server.http.post("/e/secret-event-key", content=b'{"name": "a"}')
    assert ok.status_code == 200 and len(ok.json()["ids"]) == 1


@pytest.mark.parametrize(
    "token", [None, "Bearer nope", "Bearer signkey-test-" + "ab" * 32, "Basic abc"]
)
def test_production_refuses_unsigned_api_calls(
    prod_server: ServerProcess, token: str | None
) -> None:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = token
    assert_error(
        prod_server.http.post(
            "/fn/register", content=json.dumps(app_body([fn()])), headers=headers
        ),
        401,
        "unauthorized",
    )
    assert_error(prod_server.http.get("/v1/events", headers=headers), 401, "unauthorized")


def test_production_accepts_hashed_signing_key(prod_server: ServerProcess) -> None:
    from stepwise.protocol import hash_signing_key

    headers = {"authorization": f"Bearer {hash_signing_key(SIGNING_KEY)}"}
    assert prod_server.http.get("/v1/events", headers=headers).status_code == 200
    # /dev is a dev-server page only.
    assert prod_server.http.get("/dev").status_code == 404
    assert sign(b"{}", SIGNING_KEY)  # the key is well formed for signing app requests
