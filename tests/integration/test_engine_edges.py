"""The engine's sharp edges, each on a real server: signal conflicts, faults inside the
server, and a worker that sleeps until something is due instead of polling."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.harness import ServerProcess, Stack, wait_until


def start_stack(tmp_path: Path, *, faults: str | None = None) -> Stack:
    stack = Stack(tmp_path, "edges_app", server_args=["--retry-interval", "1"], functions=2)
    if faults is not None:
        stack.server.env["STEPWISE_FAULTS"] = faults
    return stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with start_stack(tmp_path) as s:
        yield s


def run_of(stack: Stack, event_id: str) -> dict[str, Any]:
    runs = wait_until(lambda: stack.server.runs(event_id), timeout=20, what="the run")
    run: dict[str, Any] = runs[0]
    return run


def wait_ready(stack: Stack, run_id: str) -> None:
    """The run passed its first step and is about to wait for its signal."""

    def waiting() -> bool:
        history = stack.server.http.get(f"/v1/runs/{run_id}/history").json()["data"]
        return any(e["kind"] == "WaitStarted" for e in history)

    wait_until(waiting, timeout=20, what=f"run {run_id} waiting")


def signal(stack: Stack, name: str, data: Any) -> httpx.Response:
    return stack.server.http.post("/v1/signals", json={"signal": name, "data": data})


# ---- wait_for_signal conflicts -------------------------------------------------------------


def test_replace_takes_the_signal_over_and_the_earlier_waiter_times_out(stack: Stack) -> None:
    first = run_of(
        stack,
        stack.server.send("edges/signal", {"signal": "s1", "mode": "replace", "timeout": "3s"}),
    )
    wait_ready(stack, first["run_id"])
    second = run_of(
        stack,
        stack.server.send("edges/signal", {"signal": "s1", "mode": "replace", "timeout": "60s"}),
    )
    wait_ready(stack, second["run_id"])

    assert signal(stack, "s1", {"n": 1}).status_code == 200
    done = stack.server.wait_for_run(second["event_id"], timeout=20)
    assert done["status"] == "Completed", stack.logs()[-3000:]
    assert done["output"] == {"got": {"signal": "s1", "data": {"n": 1}}}
    # The earlier waiter lost the signal but keeps its own timeout, as the reference's does.
    earlier = stack.server.wait_for_run(first["event_id"], timeout=20)
    assert earlier["status"] == "Completed" and earlier["output"] == {"got": None}


def test_runs_racing_for_a_free_signal_all_end_and_one_gets_it(stack: Stack) -> None:
    body = [
        {"name": "edges/signal", "data": {"signal": "free", "mode": "replace", "timeout": "4s"}}
        for _ in range(20)
    ]
    ids = stack.server.http.post(f"/e/{stack.server.event_key}", json=body).json()["ids"]
    runs = [run_of(stack, event_id) for event_id in ids]
    for run in runs:
        wait_ready(stack, run["run_id"])
    assert signal(stack, "free", "hello").status_code == 200
    ended = [stack.server.wait_for_run(event_id, timeout=30) for event_id in ids]
    assert {run["status"] for run in ended} == {"Completed"}, stack.logs()[-3000:]
    got = [run["output"]["got"] for run in ended if run["output"]["got"] is not None]
    assert got == [{"signal": "free", "data": "hello"}]


def test_fail_mode_fails_the_second_waiter_as_the_reference_does(stack: Stack) -> None:
    holder = run_of(
        stack, stack.server.send("edges/signal", {"signal": "s2", "mode": "fail", "timeout": "60s"})
    )
    wait_ready(stack, holder["run_id"])
    event_id = stack.server.send("edges/signal", {"signal": "s2", "mode": "fail", "timeout": "60s"})
    second = stack.server.wait_for_run(event_id, timeout=20)
    assert second["status"] == "Failed"
    assert second["output"] == {
        "name": "Error",
        "message": "Signal conflict; signal wait already exists for another run",
    }
    # The holder keeps the signal.
    assert signal(stack, "s2", 7).status_code == 200
    done = stack.server.wait_for_run(holder["event_id"], timeout=20)
    assert done["output"] == {"got": {"signal": "s2", "data": 7}}


# ---- faults inside the server ----------------------------------------------------------------


def test_a_job_the_server_failed_on_is_retried_within_seconds(tmp_path: Path) -> None:
    with start_stack(tmp_path, faults="commit.call=2") as stack:
        event_id = stack.server.send("edges/limited", {"who": "a"})
        # The lease is two hours: finishing inside this wait means the fault did not hold it.
        run = stack.server.wait_for_run(event_id, timeout=30)
        assert run["status"] == "Completed" and run["output"] == "a", stack.logs()[-3000:]
        assert stack.server.log().count("InjectedFault") >= 2


def test_a_faulting_job_frees_its_concurrency_slot_for_others(tmp_path: Path) -> None:
    with start_stack(tmp_path, faults="commit.call=3") as stack:
        ids = [stack.server.send("edges/limited", {"who": who}) for who in ("a", "b", "c")]
        runs = [stack.server.wait_for_run(event_id, timeout=40) for event_id in ids]
        assert [r["output"] for r in runs] == ["a", "b", "c"], stack.logs()[-3000:]


def test_a_run_the_server_keeps_failing_on_fails_visibly(tmp_path: Path) -> None:
    with start_stack(tmp_path, faults="commit.call=always") as stack:
        event_id = stack.server.send("edges/limited", {"who": "a"})
        run = stack.server.wait_for_run(event_id, timeout=40)
        assert run["status"] == "Failed"
        assert run["output"]["name"] == "InternalServerError"
        assert "InjectedFault" in run["output"]["message"]
        failed = stack.server.http.get("/v1/events", params={"name": "inngest/function.failed"})
        assert [e["data"]["run_id"] for e in failed.json()["data"]] == [run["run_id"]]
        # The slot was released: the next run of the same limited function is not blocked
        # by the failed one (it fails the same way, but it gets to run).
        other = stack.server.wait_for_run(
            stack.server.send("edges/limited", {"who": "b"}), timeout=40
        )
        assert other["status"] == "Failed"


# ---- no polling tick --------------------------------------------------------------------


def test_an_idle_worker_does_not_poll(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, sdk_urls=[], extra_args=["--log-level", "debug", "--no-poll"])
    server.start_and_wait()
    try:
        time.sleep(3.5)
        idle = re.findall(r"worker idle", server.log())
        # One pass at start, then it sleeps until notified: a 1 s tick would show 3 or more.
        assert 1 <= len(idle) <= 2, server.log()[-2000:]
        event_id = server.send("edges/nobody-listens")
        assert server.http.get(f"/v1/events/{event_id}").status_code == 200
    finally:
        server.close()
