"""PostgreSQL restarted under load: 503s while it is down, and nothing acknowledged is lost.

The test runs its own PostgreSQL server (the shared one serves the other tests), one
`stepwise start` node on it, and an app. Events are sent before, during and after a
restart; every event answered 200 must get its run, and every run must complete.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from support.harness import AppProcess, ServerProcess, free_port, wait_until
from support.pgcluster import PrivatePostgres

SIGNING_KEY = "signkey-prod-" + "d2" * 32
EVENT_KEY = "restart-event-key"

# Once, not per backend: the test restarts a PostgreSQL server of its own.
pytestmark = [pytest.mark.timeout(300), pytest.mark.backends("postgres")]


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        with psycopg.connect(pg.admin_uri, autocommit=True) as admin:
            admin.execute("CREATE DATABASE stepwise")
        yield pg
    finally:
        pg.close()


def _post(node: ServerProcess, n: int) -> httpx.Response:
    body = [{"name": "test/three", "data": {"n": n}}]
    return node.http.post(
        f"/e/{EVENT_KEY}", content=json.dumps(body), headers={"content-type": "application/json"}
    )


def test_events_survive_a_postgres_restart(tmp_path: Path, private_pg: PrivatePostgres) -> None:
    port = free_port()
    app = AppProcess(
        tmp_path,
        "durable_app",
        server_url=f"http://127.0.0.1:{port}",
        extra_env={"STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY},
    )
    node = ServerProcess(
        tmp_path, sdk_urls=[app.url], port=port, postgres_uri=private_pg.uri("stepwise")
    )
    node.production(signing_key=SIGNING_KEY, event_key=EVENT_KEY)
    accepted: dict[int, str] = {}
    refused: list[dict[str, object]] = []
    try:
        app.start_and_wait()
        node.start_and_wait(timeout=60)
        node.wait_for_functions(8)
        n = 0
        for _ in range(20):  # before
            r = _post(node, n)
            assert r.status_code == 200, r.text
            accepted[n] = r.json()["ids"][0]
            n += 1

        private_pg.stop("fast")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # during: 503 with a clear body, never a 200
            r = _post(node, n)
            assert r.status_code == 503, r.text
            refused.append(r.json())
            n += 1
            time.sleep(0.05)
        private_pg.start()

        def answered() -> bool:
            nonlocal n
            r = _post(node, n)
            if r.status_code == 200:
                accepted[n] = r.json()["ids"][0]
            n += 1
            return r.status_code == 200

        wait_until(answered, timeout=60, interval=0.2, what="events accepted again")
        for _ in range(20):  # after
            r = _post(node, n)
            assert r.status_code == 200, r.text
            accepted[n] = r.json()["ids"][0]
            n += 1

        runs = {k: node.wait_for_run(event_id, timeout=90) for k, event_id in accepted.items()}
    finally:
        app.stop()
        node.close()

    assert refused, "the outage was not seen"
    for body in refused:
        assert body["code"] == "database_unavailable", body
        assert "database" in str(body["error"]).lower(), body
    assert all(run["status"] == "Completed" for run in runs.values()), runs
    for k, run in runs.items():
        assert run["output"] == {"a": k + 1, "b": (k + 1) * 2, "c": "done"}, run
