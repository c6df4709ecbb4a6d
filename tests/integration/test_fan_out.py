"""Wide fan-outs joined at the end: every run ends, and every step is planned exactly once.

A parent that invokes 1,000 children in one parallel group used to hang now and then:
results arriving while the parent was being called made the server drop a call, or plan
finished invokes again, leaving pauses nothing would resolve.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.harness import Stack, wait_until

WIDTH = 1000
# How long a run may take before it counts as hung: a liveness bound, not a speed test. A
# thousand-step join takes ~30 s alone on either backend, but up to twice the old 90 s
# bound on PostgreSQL under a full `make test` sharing two cores.
ENDS_WITHIN = 180

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "fanout_app", functions=4) as s:
        yield s


def history(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = stack.server.http.get(f"/v1/runs/{run_id}/history").json()[
        "data"
    ]
    return entries


def kinds(stack: Stack, run_id: str) -> Counter[str]:
    return Counter(entry["kind"] for entry in history(stack, run_id))


def assert_planned_once(stack: Stack, run_id: str, started: str, ended: str) -> None:
    entries = history(stack, run_id)
    per_step = Counter((e["kind"], e["step_id"]) for e in entries if e["step_id"])
    twice = {key: n for key, n in per_step.items() if n != 1}
    assert twice == {}, f"steps recorded more than once: {list(twice.items())[:5]}"
    counts = Counter(e["kind"] for e in entries)
    assert counts[started] == WIDTH and counts[ended] == WIDTH, counts


def open_leftovers(stack: Stack, run_id: str) -> tuple[int, int, int]:
    """Pauses, jobs and open steps the run still holds (an ended run holds none)."""
    pauses, jobs, steps = (
        stack.server.query(f"SELECT count(*) FROM {table} WHERE run_id = ?", (run_id,))[0][0]
        for table in ("pauses", "jobs", "open_steps")
    )
    return pauses, jobs, steps


@pytest.mark.parametrize("round_", range(3))
def test_a_thousand_invoked_children_join_and_each_starts_once(stack: Stack, round_: int) -> None:
    event_id = stack.server.send("fanout/invokes", {"width": WIDTH})
    run = stack.server.wait_for_run(event_id, timeout=ENDS_WITHIN)
    assert run["status"] == "Completed", stack.logs()[-3000:]
    assert run["output"] == {"count": WIDTH, "sum": sum(2 * i for i in range(WIDTH))}
    assert_planned_once(stack, run["run_id"], "InvokeStarted", "InvokeEnded")
    invoked = Counter(
        json.loads(row[0])["_inngest"]["correlation_id"]
        for row in stack.server.query(
            "SELECT data FROM events WHERE name = 'inngest/function.invoked'"
        )
    )
    mine = {k: n for k, n in invoked.items() if k.startswith(run["run_id"])}
    assert len(mine) == WIDTH and set(mine.values()) == {1}
    assert open_leftovers(stack, run["run_id"]) == (0, 0, 0)


def test_a_thousand_parallel_step_runs_join_with_one_discovery(stack: Stack) -> None:
    event_id = stack.server.send("fanout/runs", {"width": WIDTH})
    run = stack.server.wait_for_run(event_id, timeout=ENDS_WITHIN)
    assert run["status"] == "Completed", stack.logs()[-3000:]
    assert run["output"] == {"count": WIDTH, "sum": sum(i * i for i in range(WIDTH))}
    assert_planned_once(stack, run["run_id"], "StepPlanned", "StepCompleted")
    assert open_leftovers(stack, run["run_id"]) == (0, 0, 0)


def test_a_thousand_parallel_waits_resume_and_join(stack: Stack) -> None:
    event_id = stack.server.send("fanout/waits", {"width": WIDTH, "tag": "t1"})
    run_id = wait_until(
        lambda: (runs := stack.server.runs(event_id)) and runs[0]["run_id"],
        timeout=30,
        what="the waiting run",
    )
    wait_until(lambda: kinds(stack, run_id)["WaitStarted"] == WIDTH, timeout=60, what="every wait")
    events = [{"name": "fanout/go", "data": {"slot": f"t1-{i}", "n": i}} for i in range(WIDTH)]
    response = stack.server.http.post(f"/e/{stack.server.event_key}", json=events)
    assert response.status_code == 200, response.text
    run = stack.server.wait_for_run(event_id, timeout=ENDS_WITHIN)
    assert run["status"] == "Completed", stack.logs()[-3000:]
    assert run["output"] == {"count": WIDTH, "sum": sum(range(WIDTH))}
    assert_planned_once(stack, run_id, "WaitStarted", "WaitEnded")
    assert open_leftovers(stack, run_id) == (0, 0, 0)
