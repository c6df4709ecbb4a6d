"""Short leases: renewed while a call is in flight, and fenced once another holder took over.

The server runs with one-second leases. A slow step outlives many of them, so only the
heartbeat keeps its job. Then the server is frozen (SIGSTOP) past its lease, as a stalled
node would be, and another holder leases the job through a second store on the same database;
when the server wakes, its outcome must be refused and nothing of it recorded.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepwise.protocol import hash_step_id
from support.harness import ServerProcess, Stack, wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "durable_app", server_args=["--lease-seconds", "1"], functions=8) as s:
        yield s


def stored_steps(server: ServerProcess, run_id: str) -> set[str]:
    return {row[0] for row in server.query("SELECT step_id FROM steps WHERE run_id = ?", (run_id,))}


def in_step(stack: Stack, step: str) -> str:
    found = wait_until(
        lambda: [e["run_id"] for e in stack.app.executions() if e["step"] == step],
        timeout=20,
        what=f"a run inside {step}",
    )
    run_id: str = found[0]
    return run_id


def test_a_step_longer_than_many_leases_runs_once(stack: Stack) -> None:
    event_id = stack.server.send("test/slow", {"step_seconds": 4, "sleep": "1s"})

    run = stack.server.wait_for_run(event_id, timeout=60)

    assert run["status"] == "Completed", stack.logs()
    assert [s for s, _ in stack.steps_of(run["run_id"])] == ["s0", "s1", "s2"]
    assert "lost its lease" not in stack.server.log()


async def take_over(server: ServerProcess, run_id: str, lease_ms: int) -> None:
    """Lease the run's job as another node would once the server's lease ran out."""
    store = server.second_store()
    await store.open()
    try:
        while True:
            jobs = await store.lease_due_jobs(int(time.time() * 1000), 100, lease_ms)
            if any(job.run_id == run_id for job in jobs):
                return
            await asyncio.sleep(0.05)
    finally:
        await store.close()


def test_a_stalled_node_cannot_commit_after_its_lease_was_taken_over(stack: Stack) -> None:
    event_id = stack.server.send("test/slow", {"step_seconds": 3, "sleep": "1s"})
    run_id = in_step(stack, "s0")
    server = stack.server.proc
    assert server is not None

    server.send_signal(signal.SIGSTOP)
    try:
        asyncio.run(asyncio.wait_for(take_over(stack.server, run_id, 8000), timeout=30))
    finally:
        server.send_signal(signal.SIGCONT)

    # The step's reply reaches the woken server, whose commit is refused: nothing stored.
    wait_until(
        lambda: "its outcome was dropped" in stack.server.log(),
        timeout=30,
        what="the stale commit refused",
    )
    assert hash_step_id("s0") not in stored_steps(stack.server, run_id)

    # Once the other holder's lease runs out, the server runs the step again and finishes.
    run = stack.server.wait_for_run(event_id, timeout=60)
    assert run["status"] == "Completed", stack.logs()
    assert [s for s, _ in stack.steps_of(run_id)] == ["s0", "s0", "s1", "s2"]
