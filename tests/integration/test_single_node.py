"""A SQLite database belongs to one server process: a second one refuses to start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import ServerProcess, Stack, wait_until

# SQLite only: the refusal is SQLite's file lock. PostgreSQL nodes share their database by
# design (tests/integration/test_cluster.py).
pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "durable_app", functions=8) as s:
        yield s


def test_a_second_server_on_the_same_file_refuses_to_start(stack: Stack, tmp_path: Path) -> None:
    # A run is inside a slow step: a second server that cleared leases would run it again.
    event_id = stack.server.send("test/slow", {"step_seconds": 2, "sleep": "1s"})
    wait_until(
        lambda: any(e["step"] == "s0" for e in stack.app.executions()),
        timeout=20,
        what="the run inside its first step",
    )

    second = ServerProcess(tmp_path, sdk_urls=[stack.app.url])
    assert second.db == stack.server.db
    second.start()
    try:
        assert second.proc is not None
        code = second.proc.wait(timeout=30)
    finally:
        second.close()

    assert code != 0
    assert "is in use by another Stepwise server" in second.log(), second.log()

    # The first server goes on: its run completes without running its step again.
    run = stack.server.wait_for_run(event_id, timeout=60)
    assert run["status"] == "Completed", stack.logs()
    assert [s for s, _ in stack.steps_of(run["run_id"])] == ["s0", "s1", "s2"]
    later = stack.server.wait_for_run(stack.server.send("test/three", {"n": 1}), timeout=30)
    assert later["status"] == "Completed", stack.logs()
