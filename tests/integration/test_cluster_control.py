"""Two `stepwise start` nodes on one PostgreSQL database: what one node does, the other sees.

An app synced through node A is known to node B without a sync of its own; a run started
through A is cancelled through B; a cron schedule fires once per tick for the cluster, not
once per node.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from support.harness import AppProcess, ServerProcess, free_port, wait_until

SIGNING_KEY = "signkey-prod-" + "e3" * 32
EVENT_KEY = "control-event-key"

# Sets up its own PostgreSQL nodes: runs once, not once per backend.
pytestmark = [pytest.mark.timeout(240), pytest.mark.backends("postgres")]


def _node(tmp: Path, uri: str, sdk_urls: list[str], port: int | None = None) -> ServerProcess:
    node = ServerProcess(tmp, sdk_urls=sdk_urls, port=port, postgres_uri=uri)
    node.production(signing_key=SIGNING_KEY, event_key=EVENT_KEY)
    return node


def test_two_nodes_share_apps_cancellations_and_cron(tmp_path: Path, pg_uri: str) -> None:
    port = free_port()
    app = AppProcess(
        tmp_path,
        "durable_app",
        server_url=f"http://127.0.0.1:{port}",
        extra_env={"STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY},
    )
    a = _node(tmp_path, pg_uri, [app.url], port)
    b = _node(tmp_path, pg_uri, [])
    try:
        app.start_and_wait()
        b.start_and_wait(timeout=60)  # B first: it knows nothing until A syncs the app
        assert b.http.get("/v1/apps").json()["data"] == []
        a.start_and_wait(timeout=60)
        a.wait_for_functions(8)
        b.wait_for_functions(8, timeout=10)

        event_id = a.send("test/slow", {"sleep": "60s", "step_seconds": 0})
        wait_until(lambda: a.runs(event_id), timeout=20, what="the run")
        run_id = a.runs(event_id)[0]["run_id"]
        wait_until(
            lambda: [e for e in app.executions() if e["run_id"] == run_id and e["step"] == "s0"],
            timeout=20,
            what="the first step",
        )
        cancelled = b.http.delete(f"/v1/runs/{run_id}")
        assert cancelled.status_code == 200, cancelled.text
        run = a.wait_for_run_end(run_id, timeout=20)
        assert run["status"] == "Cancelled", run

        # Cron: both nodes run the queue, one row holds the schedule: one tick per minute.
        wait_until(
            lambda: [e for e in app.executions() if e["step"] == "tick"],
            timeout=75,
            interval=0.5,
            what="a cron tick",
        )
        time.sleep(5)  # time for a second node's duplicate tick to show, were there one
        ticks = [e for e in app.executions() if e["step"] == "tick"]
    finally:
        app.stop()
        a.close()
        b.close()

    steps = [e["step"] for e in app.executions() if e["run_id"] == run_id]
    assert steps == ["s0"], steps  # cancelled while asleep: nothing after the sleep ran
    per_minute = collections.Counter(int(e["t"] // 60) for e in ticks)
    assert set(per_minute.values()) == {1}, per_minute
    assert len({e["run_id"] for e in ticks}) == len(ticks)
