"""API keys made with ``stepwise keys`` open the REST API of a running production server.

The CLI runs as its own process against the server's database while the server runs (on
SQLite it opens the file beside the server's lock). Each test sends its requests with its
own ``X-Forwarded-For`` address (uvicorn trusts it from 127.0.0.1), so that the failures
one test provokes count against that address only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stepwise.server.keys import new_api_key
from support.api_keys import create_key, keys_cli
from support.harness import ServerProcess, wait_until

SIGNING_KEY = "signkey-prod-" + "5d" * 32


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("api-keys"), sdk_urls=[])
    proc.production(signing_key=SIGNING_KEY, event_key="keys-event-key")
    proc.start_and_wait()
    yield proc
    proc.close()


def client(server: ServerProcess, address: str, token: str | None) -> httpx.Client:
    headers = {"x-forwarded-for": address}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=server.url, headers=headers, timeout=10)


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["code"] == "unauthorized"
    assert body["status"] == 401
    assert "API key" in body["error"]


def test_a_key_from_the_cli_opens_the_api_until_it_is_revoked(server: ServerProcess) -> None:
    key_id, key = create_key(server, "ci pipeline")
    assert key.startswith("sw_key_")

    with client(server, "192.0.2.1", key) as api:
        for path in ("/v1/events", "/v1/apps", "/v1/cancellations"):
            response = api.get(path)
            assert response.status_code == 200, (path, response.text)
            assert "data" in response.json()
        scrape = api.get("/metrics")  # a Prometheus scraper may use a key too
        assert scrape.status_code == 200, scrape.text
        assert "stepwise_queue_due_jobs" in scrape.text

        listed = keys_cli(server, "list")
        assert listed.returncode == 0, listed.stderr
        assert key not in listed.stdout and key[len("sw_key_") :] not in listed.stdout
        (row,) = [line for line in listed.stdout.splitlines() if line.startswith(key_id)]
        assert "ci pipeline" in row
        # Created and last used (the first use is recorded at once); not revoked.
        assert row.count(" UTC") == 2 and row.rstrip().endswith("-")

        revoked = keys_cli(server, "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        # Each node trusts a key it found for one second before it looks again.
        wait_until(lambda: api.get("/v1/events").status_code == 401, timeout=3, what="key refused")
        assert_refused(api.get("/v1/events"))

    listed = keys_cli(server, "list")
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(key_id)]
    assert row.count(" UTC") == 3  # now revoked too
    again = keys_cli(server, "revoke", key_id)
    assert again.returncode == 1
    assert "already revoked" in again.stderr


def test_keys_are_independent_and_the_signing_key_still_works(server: ServerProcess) -> None:
    first_id, first = create_key(server, "first")
    _, second = create_key(server, "second")
    assert first != second
    assert keys_cli(server, "revoke", first_id).returncode == 0

    with client(server, "192.0.2.2", second) as api:
        assert api.get("/v1/events").status_code == 200
    with client(server, "192.0.2.2", first) as api:
        wait_until(lambda: api.get("/v1/events").status_code == 401, timeout=3, what="key refused")
    assert server.http.get("/v1/events").status_code == 200  # the signing key's hash


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer nope",
        f"Bearer {new_api_key()}",
        "Bearer sw_key_short",
        "Bearer signkey-prod-" + "00" * 32,
        "Basic " + new_api_key(),
    ],
    ids=[
        "none",
        "no-token",
        "garbage",
        "unknown-key",
        "malformed-key",
        "other-signing-key",
        "basic",
    ],
)
def test_a_missing_or_wrong_key_is_refused_with_a_json_401(
    server: ServerProcess, authorization: str | None
) -> None:
    headers = {"x-forwarded-for": "192.0.2.3"}
    if authorization is not None:
        headers["authorization"] = authorization
    assert_refused(httpx.get(f"{server.url}/v1/events", headers=headers))


def test_an_api_key_does_not_stand_in_for_the_signing_key_on_sdk_routes(
    server: ServerProcess,
) -> None:
    _, key = create_key(server, "rest only")
    with client(server, "192.0.2.4", key) as api:
        assert api.get("/v1/events").status_code == 200
        response = api.post("/fn/register", json={"url": "http://x", "functions": []})
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthorized"


def test_repeated_failures_from_one_address_are_answered_with_429(server: ServerProcess) -> None:
    _, key = create_key(server, "good")
    with (
        client(server, "198.51.100.7", new_api_key()) as guesser,
        client(server, "198.51.100.7", key) as same_address,
        client(server, "198.51.100.8", key) as elsewhere,
    ):
        for _ in range(10):
            assert_refused(guesser.get("/v1/events"))

        limited = guesser.get("/v1/events")
        assert limited.status_code == 429, limited.text
        body = limited.json()
        assert body["code"] == "too_many_auth_failures"
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert body["retry_after"] == retry_after

        # Even the right key waits, from that address only.
        assert same_address.get("/v1/events").status_code == 429
        assert elsewhere.get("/v1/events").status_code == 200

        wait_until(
            lambda: same_address.get("/v1/events").status_code == 200,
            timeout=retry_after + 2,
            interval=0.5,
            what="the lock-out to pass",
        )


# Nodes share a database only on PostgreSQL.
@pytest.mark.backends("postgres")
def test_a_key_revoked_through_one_database_is_refused_by_every_node(
    tmp_path: Path, pg_uri: str
) -> None:
    nodes = [ServerProcess(tmp_path, sdk_urls=[], postgres_uri=pg_uri) for _ in range(2)]
    try:
        for node in nodes:
            node.production(signing_key=SIGNING_KEY, event_key="keys-event-key")
            node.start_and_wait(timeout=60)
        key_id, key = create_key(nodes[0], "cluster")
        apis = [client(node, "192.0.2.9", key) for node in nodes]
        for api in apis:
            assert api.get("/v1/events").status_code == 200

        assert keys_cli(nodes[1], "revoke", key_id).returncode == 0
        for api in apis:
            wait_until(
                lambda api=api: api.get("/v1/events").status_code == 401,
                timeout=3,
                what="every node to refuse the key",
            )
            api.close()
    finally:
        for node in nodes:
            node.close()
