"""History retention: finished runs and their events go after the retention period; active
runs, and the events they need, stay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import Stack, wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(
        tmp_path,
        "durable_app",
        server_args=["--retention", "2s"],
        server_env={"STEPWISE_RETENTION_SWEEP_SECONDS": "0.3"},
        functions=8,
    ) as s:
        yield s


def test_finished_runs_disappear_after_the_retention_and_active_ones_stay(stack: Stack) -> None:
    server = stack.server
    # A run that sleeps for two minutes, started first: its event is the oldest one.
    active_event = server.send("test/slow", {"step_seconds": 0.1, "sleep": "120s"})
    done_event = server.send("test/three", {"n": 1})
    done = server.wait_for_run(done_event, timeout=30)
    assert done["status"] == "Completed", stack.logs()
    assert server.http.get(f"/v1/runs/{done['run_id']}/history").json()["data"]

    wait_until(
        lambda: server.http.get(f"/v1/runs/{done['run_id']}").status_code == 404,
        timeout=30,
        what="the finished run purged",
    )
    assert server.http.get(f"/v1/runs/{done['run_id']}/history").status_code == 404
    assert server.http.get(f"/v1/events/{done_event}").status_code == 404
    assert server.http.get(f"/v1/events/{done_event}/runs").status_code == 404

    [active] = server.runs(active_event)
    assert active["status"] == "Running", stack.logs()
    assert server.http.get(f"/v1/events/{active_event}").status_code == 200
    assert server.http.get(f"/v1/runs/{active['run_id']}/history").json()["data"]
    # A new run still works on the swept database.
    again = server.wait_for_run(server.send("test/three", {"n": 2}), timeout=30)
    assert again["status"] == "Completed", stack.logs()
