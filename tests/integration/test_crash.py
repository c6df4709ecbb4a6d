"""``kill -9`` of the server (and of the app) in the middle of runs loses nothing.

After each kill the SQLite file is read directly, so the test knows exactly which step
results were committed at the moment of the crash; none of those steps may execute again.
At most the step that was in flight is re-executed, and every run must still complete.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepwise.protocol import hash_step_id
from support.harness import ServerProcess, Stack, wait_until

RUNS = 12
EXPECTED_OUTPUT = [0, 1, 2]
STEP_NAMES = ("s0", "s1", "s2")


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    # Indirectly parametrized with "classic" where a test runs both ways: each step in a call
    # of its own, rather than the SDK's default of checkpointing sequential steps.
    mode = getattr(request, "param", "checkpointing")
    with Stack(
        tmp_path,
        "durable_app",
        server_args=["--retry-interval", "1"],
        functions=8,
        app_env={"STEPWISE_TEST_CHECKPOINTING": "0" if mode == "classic" else "1"},
    ) as s:
        yield s


def committed_steps(server: ServerProcess) -> dict[str, set[str]]:
    """Per run, the hashed ids of the steps whose result is durably stored."""
    rows = server.query("SELECT run_id, step_id FROM steps")
    out: dict[str, set[str]] = {}
    for run_id, step_id in rows:
        out.setdefault(run_id, set()).add(step_id)
    return out


def send_slow_runs(stack: Stack, *, step_seconds: float, sleep: str) -> list[str]:
    return [
        stack.server.send("test/slow", {"step_seconds": step_seconds, "sleep": sleep})
        for _ in range(RUNS)
    ]


def kill_and_restart(
    stack: Stack, crashes: list[tuple[float, dict[str, set[str]]]], down_for: float = 0.3
) -> None:
    stack.server.kill()
    crashes.append((time.time(), committed_steps(stack.server)))
    time.sleep(down_for)
    stack.server.start_and_wait()


def assert_all_complete_without_rerunning_committed_steps(
    stack: Stack, event_ids: list[str], crashes: list[tuple[float, dict[str, set[str]]]]
) -> None:
    runs = [stack.server.wait_for_run(e, timeout=60) for e in event_ids]
    for run in runs:
        assert run["status"] == "Completed", stack.logs()
        assert run["output"] == EXPECTED_OUTPUT
    executions = stack.app.executions()
    for run in runs:
        mine = [e for e in executions if e["run_id"] == run["run_id"]]
        for name in STEP_NAMES:
            assert any(e["step"] == name for e in mine), f"{name} never ran for {run['run_id']}"
        for crash_time, committed in crashes:
            done = committed.get(run["run_id"], set())
            for e in mine:
                if e["t"] > crash_time and hash_step_id(e["step"]) in done:
                    pytest.fail(
                        f"step {e['step']} of run {run['run_id']} ran again after its result was committed"
                    )
        # Re-executions: at most one step per crash can have been in flight for a run.
        reruns = sum(sum(1 for e in mine if e["step"] == name) - 1 for name in STEP_NAMES)
        assert reruns <= len(crashes), (
            f"run {run['run_id']} re-executed {reruns} steps over {len(crashes)} crashes"
        )


@pytest.mark.parametrize("stack", ["classic", "checkpointing"], indirect=True)
def test_kill_during_steps(stack: Stack, request: pytest.FixtureRequest) -> None:
    event_ids = send_slow_runs(stack, step_seconds=1.5, sleep="1s")
    # Every run is inside its first step (each takes 1.5 s) when the server dies.
    wait_until(
        lambda: len({e["run_id"] for e in stack.app.executions()}) == RUNS,
        timeout=20,
        what="all runs in s0",
    )
    crashes: list[tuple[float, dict[str, set[str]]]] = []
    kill_and_restart(stack, crashes)
    # The crash really landed inside s0: some run (all, unless the machine is slow) had
    # not had its result committed.
    s0 = hash_step_id("s0")
    assert sum(1 for steps in crashes[0][1].values() if s0 in steps) < RUNS
    assert_all_complete_without_rerunning_committed_steps(stack, event_ids, crashes)
    if request.node.callspec.params["stack"] == "classic":
        # Its call died with the server, so s0 ran again. (A checkpointing SDK posts the
        # result once the server is back, and may be spared the second run.)
        rerun = [
            e
            for e in event_ids
            if [s for s, _ in stack.steps_of(stack.server.runs(e)[0]["run_id"])].count("s0") == 2
        ]
        assert rerun, "no step was in flight at the crash; the test did not test anything"


def test_kill_during_sleep(stack: Stack) -> None:
    event_ids = send_slow_runs(stack, step_seconds=0.1, sleep="4s")

    def all_sleeping() -> bool:
        committed = committed_steps(stack.server)
        return len(committed) == RUNS and all(
            hash_step_id("s0") in steps for steps in committed.values()
        )

    wait_until(all_sleeping, timeout=20, what="every run asleep after s0")
    crashes: list[tuple[float, dict[str, set[str]]]] = []
    kill_and_restart(stack, crashes, down_for=1.0)
    assert_all_complete_without_rerunning_committed_steps(stack, event_ids, crashes)
    for event_id in event_ids:
        run = stack.server.runs(event_id)[0]
        steps = [s for s, _ in stack.steps_of(run["run_id"])]
        assert steps.count("s0") == 1, "s0 finished before the crash and must not run again"


def test_kill_at_random_moments(stack: Stack) -> None:
    rng = random.Random(20261124)
    event_ids = send_slow_runs(stack, step_seconds=0.4, sleep="1s")
    crashes: list[tuple[float, dict[str, set[str]]]] = []
    for _ in range(3):
        time.sleep(rng.uniform(0.2, 1.2))
        kill_and_restart(stack, crashes, down_for=rng.uniform(0.1, 0.5))
    assert_all_complete_without_rerunning_committed_steps(stack, event_ids, crashes)


def test_kill_of_the_app_during_steps(stack: Stack) -> None:
    event_ids = send_slow_runs(stack, step_seconds=1.5, sleep="1s")
    wait_until(
        lambda: len({e["run_id"] for e in stack.app.executions()}) == RUNS,
        timeout=20,
        what="all runs in s0",
    )
    stack.app.kill()
    crash_time = time.time()
    committed = committed_steps(stack.server)
    time.sleep(0.5)
    stack.app.start_and_wait()  # same port: the server's retries reach it again
    assert_all_complete_without_rerunning_committed_steps(
        stack, event_ids, [(crash_time, committed)]
    )


def test_kill_during_event_ingest(stack: Stack) -> None:
    """Events sent while the server dies: every acknowledged event gets exactly one run.

    The sender retries a failed request with the same ``x-inngest-event-id-seed``, as the
    SDKs do, so a request that committed before the crash but was never answered is stored
    once, not twice.
    """
    import threading

    import httpx

    from stepwise.protocol import make_seed

    acked: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def sender() -> None:
        client = httpx.Client(timeout=5)
        while not stop.is_set() and len(acked) < 1000:
            seed = make_seed()
            body = [{"name": "test/catches", "data": {}} for _ in range(5)]
            while not stop.is_set():
                try:
                    r = client.post(
                        f"{stack.server.url}/e/k",
                        json=body,
                        headers={"x-inngest-event-id-seed": seed},
                    )
                except httpx.HTTPError as exc:
                    failures.append(type(exc).__name__)
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    acked.extend(r.json()["ids"])
                    break
        client.close()

    thread = threading.Thread(target=sender)
    thread.start()
    crashes: list[tuple[float, dict[str, set[str]]]] = []
    try:
        for pause in (0.3, 0.5):
            time.sleep(pause)
            kill_and_restart(stack, crashes, down_for=0.3)
        wait_until(lambda: len(acked) >= 1000, timeout=60, what="1000 acknowledged events")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert failures, "no request failed: the server never died while events were being sent"
    assert len(set(acked)) == len(acked)
    for event_id in acked:
        runs = stack.server.runs(event_id)
        assert len(runs) == 1, f"event {event_id} has {len(runs)} runs"
    for event_id in acked:
        assert stack.server.wait_for_run(event_id, timeout=60)["status"] == "Completed"
