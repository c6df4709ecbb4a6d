"""Flow control decided when a run is created, counted from the application's side."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.harness import Stack, wait_until


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("flow"),
        "flow_app",
        server_args=["--retry-interval", "1"],
        functions=4,
    ) as s:
        yield s


def executions(stack: Stack, step: str) -> list[dict[str, Any]]:
    return [e for e in stack.app.executions() if e["step"] == step]


def test_rate_limited_events_never_start_runs(stack: Stack) -> None:
    a = [stack.server.send("flow/limited", {"tenant": "a", "i": i}) for i in range(5)]
    b = [stack.server.send("flow/limited", {"tenant": "b", "i": i}) for i in range(2)]
    runs_a = [stack.server.wait_for_run(e) for e in a]
    runs_b = [stack.server.wait_for_run(e) for e in b]
    assert [r["status"] for r in runs_a] == [
        "Completed",
        "Completed",
        "Skipped",
        "Skipped",
        "Skipped",
    ]
    assert all(r["skip_reason"] == "rate_limited" for r in runs_a[2:])
    assert [r["status"] for r in runs_b] == ["Completed", "Completed"]  # each key has its own limit
    time.sleep(0.5)
    by_tenant = [e["data"]["tenant"] for e in executions(stack, "limited")]
    assert by_tenant.count("a") == 2 and by_tenant.count("b") == 2


def test_idempotency_expression_allows_one_run_per_key(stack: Stack) -> None:
    first = [stack.server.send("flow/once", {"order": "o-1"}) for _ in range(3)]
    other = stack.server.send("flow/once", {"order": "o-2"})
    assert stack.server.wait_for_run(first[0])["status"] == "Completed"
    assert stack.server.wait_for_run(other)["status"] == "Completed"
    time.sleep(0.5)
    assert [stack.server.runs(e) for e in first[1:]] == [[], []]
    assert sorted(e["data"]["order"] for e in executions(stack, "once")) == ["o-1", "o-2"]


def test_singleton_skips_while_a_run_with_the_same_key_is_active(stack: Stack) -> None:
    first = stack.server.send("flow/single", {"user": "u1", "seconds": 2})
    wait_until(lambda: executions(stack, "single"), timeout=10, what="the first run to start")
    second = stack.server.send("flow/single", {"user": "u1"})
    other_user = stack.server.send("flow/single", {"user": "u2", "seconds": 0})
    skipped = stack.server.wait_for_run(second)
    assert skipped["status"] == "Skipped" and skipped["skip_reason"] == "singleton"
    assert stack.server.wait_for_run(other_user)["status"] == "Completed"
    assert stack.server.wait_for_run(first)["status"] == "Completed"
    third = stack.server.send("flow/single", {"user": "u1", "seconds": 0})
    assert stack.server.wait_for_run(third)["status"] == "Completed"
    users = [e["data"]["user"] for e in executions(stack, "single")]
    assert users.count("u1") == 2  # the first and the third, never the skipped one


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[Stack]:
    # One worker: under a backlog, the order runs start in is exactly the queue's order.
    with Stack(tmp_path, "flow_app", server_args=["--queue-workers", "1"], functions=11) as s:
        yield s


def test_higher_priority_starts_first_under_a_backlog(one_worker: Stack) -> None:
    stack = one_worker
    blocker = stack.server.send("flow/prioritized", {"p": 0, "blocker": True})
    wait_until(
        lambda: executions(stack, "blocker"), timeout=10, what="the blocker to hold the worker"
    )
    low = [stack.server.send("flow/prioritized", {"p": 0, "i": i}) for i in range(5)]
    high = [stack.server.send("flow/prioritized", {"p": 100, "i": i}) for i in range(5)]
    for event_id in [blocker, *low, *high]:
        assert stack.server.wait_for_run(event_id, timeout=30)["status"] == "Completed"
    order = [
        e["data"]["p"] for e in executions(stack, "prioritized") if not e["data"].get("blocker")
    ]
    assert order == [100] * 5 + [0] * 5, order


def queued_starts(stack: Stack, group: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in executions(stack, "queued-start")
        if e["data"]["group"] == group and not e["data"].get("blocker")
    ]


def send_behind_a_blocker(stack: Stack, group: str, blocker_s: float) -> list[str]:
    """A run holding the group's one slot, then three low and three high priority runs."""
    blocker = stack.server.send(
        "flow/queued", {"group": group, "p": 0, "blocker": True, "seconds": blocker_s}
    )
    wait_until(
        lambda: any(e["data"]["group"] == group for e in executions(stack, "queued-start")),
        timeout=10,
        what="the blocker to take the slot",
    )
    waiting = stack.server.send_events(
        [{"name": "flow/queued", "data": {"group": group, "p": 0, "i": i}} for i in range(3)]
        + [{"name": "flow/queued", "data": {"group": group, "p": 100, "i": i}} for i in range(3)]
    )
    return [blocker, *waiting]


def test_higher_priority_runs_take_a_freed_concurrency_slot_first(stack: Stack) -> None:
    events = send_behind_a_blocker(stack, "prio", blocker_s=1.0)
    for event_id in events:
        assert stack.server.wait_for_run(event_id, timeout=30)["status"] == "Completed"
    assert [d["p"] for d in queued_starts(stack, "prio")] == [100] * 3 + [0] * 3
    # Runs of the same priority take the slot in the order they came.
    assert [d["i"] for d in queued_starts(stack, "prio")] == [0, 1, 2] * 2


def test_runs_waiting_for_a_slot_keep_their_place_when_the_server_is_killed(
    tmp_path: Path,
) -> None:
    """Killed as the slot's holder commits (the commit that wakes the best waiter): the
    waiters and their ranks are in the database; after the restart every run completes,
    and the freed slot still goes to the high-priority runs first."""
    stack = Stack(tmp_path, "flow_app", server_args=["--retry-interval", "1"], functions=11)
    stack.server.env["STEPWISE_FAULTS"] = "commit.call=crash"
    with stack:
        events = send_behind_a_blocker(stack, "crash", blocker_s=1.0)
        proc = stack.server.proc
        assert proc is not None
        wait_until(lambda: proc.poll() is not None, timeout=30, what="the crash at the commit")
        ranks = stack.server.query(
            "SELECT j.wait_rank, e.data FROM jobs j JOIN runs r ON r.id = j.run_id"
            " JOIN events e ON e.internal_id = r.event_id WHERE j.wait_key IS NOT NULL"
        )
        by_priority = sorted(ranks)
        assert [json.loads(data)["p"] for _, data in by_priority] == [100] * 3 + [0] * 3

        del stack.server.env["STEPWISE_FAULTS"]
        stack.server.start_and_wait()
        for event_id in events:
            assert stack.server.wait_for_run(event_id, timeout=60)["status"] == "Completed"
        assert [d["p"] for d in queued_starts(stack, "crash")] == [100] * 3 + [0] * 3


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    current = peak = 0
    for _, delta in points:
        current += delta
        peak = max(peak, current)
    return peak


def test_never_more_steps_executing_than_the_concurrency_limit(stack: Stack) -> None:
    events = [
        stack.server.send("flow/bounded", {"tenant": t, "i": i})
        for i in range(12)
        for t in ("a", "b")
    ]
    for event_id in events:
        assert stack.server.wait_for_run(event_id, timeout=90)["status"] == "Completed"
    for tenant in ("a", "b"):
        mine = [e for e in stack.app.executions() if e["data"].get("tenant") == tenant]
        intervals = []
        for step in ("first", "second"):
            starts = {e["run_id"]: e["t"] for e in mine if e["step"] == f"{step}-start"}
            ends = {e["run_id"]: e["t"] for e in mine if e["step"] == f"{step}-end"}
            intervals += [(starts[r], ends[r]) for r in starts]
        assert len(intervals) == 24
        peak = max_overlap(intervals)
        assert peak <= 3, f"tenant {tenant}: {peak} steps at once"
        assert peak == 3, f"tenant {tenant}: the limit was never used in full ({peak})"


def test_a_sleeping_run_holds_no_concurrency_slot(stack: Stack) -> None:
    # Three runs take the key's three slots for their first step, then sleep; a fourth run's
    # first step must start while they sleep (1 s), not after their second steps.
    events = [stack.server.send("flow/bounded", {"tenant": "sleepy", "i": i}) for i in range(4)]
    for event_id in events:
        assert stack.server.wait_for_run(event_id, timeout=30)["status"] == "Completed"
    mine = [e for e in stack.app.executions() if e["data"].get("tenant") == "sleepy"]
    firsts = sorted(e["t"] for e in mine if e["step"] == "first-end")
    seconds = sorted(e["t"] for e in mine if e["step"] == "second-start")
    fourth_first_start = sorted(e["t"] for e in mine if e["step"] == "first-start")[3]
    assert len(firsts) == 4 and len(seconds) == 4
    assert fourth_first_start < seconds[0], "the fourth run waited for a sleeping run's slot"


def test_run_level_concurrency_holds_a_slot_for_the_whole_run(stack: Stack) -> None:
    events = [
        stack.server.send("flow/run-bounded", {"tenant": t, "i": i})
        for i in range(6)
        for t in ("r1", "r2")
    ]
    for event_id in events:
        assert stack.server.wait_for_run(event_id, timeout=60)["status"] == "Completed"
    for tenant in ("r1", "r2"):
        mine = [e for e in stack.app.executions() if e["data"].get("tenant") == tenant]
        begins = {e["run_id"]: e["t"] for e in mine if e["step"] == "run-begin"}
        finishes = {e["run_id"]: e["t"] for e in mine if e["step"] == "run-finish"}
        spans = [(begins[r], finishes[r]) for r in begins]
        assert len(spans) == 6
        peak = max_overlap(spans)
        assert peak <= 2, f"{tenant}: {peak} runs at once"
        assert peak == 2, f"{tenant}: the run limit was never used in full"


def test_throttle_delays_starts_and_drops_nothing(stack: Stack) -> None:
    events = [stack.server.send("flow/throttled", {"i": i}) for i in range(20)]
    for event_id in events:
        assert stack.server.wait_for_run(event_id, timeout=60)["status"] == "Completed"
    starts = sorted(e["t"] for e in stack.app.executions() if e["step"] == "throttled")
    assert len(starts) == 20  # every event ran: throttling delays, it never drops
    # limit 5 per second plus a burst of 1: never more than 6 starts in any one second.
    # The server spaces starts exactly; 50 ms is left for the app's own timing jitter.
    for first in starts:
        assert sum(1 for t in starts if first <= t < first + 0.95) <= 6
    assert starts[-1] - starts[0] >= 2.5, "20 starts at 5/s cannot all happen at once"


def test_singleton_cancel_mode_cancels_the_active_run_for_the_new_one(stack: Stack) -> None:
    first = stack.server.send("flow/single-cancel", {"user": "c1", "n": 1, "seconds": 3})
    wait_until(
        lambda: executions(stack, "single-cancel"), timeout=10, what="the first run to start"
    )
    second = stack.server.send("flow/single-cancel", {"user": "c1", "n": 2})
    assert stack.server.wait_for_run(first, timeout=20)["status"] == "Cancelled"
    newer = stack.server.wait_for_run(second, timeout=20)
    assert newer["status"] == "Completed" and newer["output"] == "2"
    time.sleep(3)  # the first run's step finishes in the app; its result must change nothing
    done = [e["data"]["n"] for e in executions(stack, "single-cancel-done")]
    assert done == [2]


def test_debounce_starts_one_run_per_key_per_quiet_period_with_the_last_event(stack: Stack) -> None:
    sent: dict[str, list[str]] = {"d1": [], "d2": []}
    for seq in range(5):
        for user in ("d1", "d2"):
            if user == "d2" and seq >= 3:
                continue
            sent[user].append(stack.server.send("flow/debounced", {"user": user, "seq": seq}))
        time.sleep(0.2)  # well inside the 1 s quiet period
    last = {user: ids[-1] for user, ids in sent.items()}
    runs = {user: stack.server.wait_for_run(last[user], timeout=20) for user in last}
    assert runs["d1"]["output"] == 4 and runs["d2"]["output"] == 2
    for user, ids in sent.items():
        assert all(stack.server.runs(e) == [] for e in ids[:-1]), (
            f"{user}: an earlier event started a run"
        )
    # After the quiet period, a new event opens a new period and a new run.
    again = stack.server.send("flow/debounced", {"user": "d1", "seq": 9})
    assert stack.server.wait_for_run(again, timeout=20)["output"] == 9
    users = [e["data"]["user"] for e in executions(stack, "debounced")]
    assert users.count("d1") == 2 and users.count("d2") == 1


def test_debounce_timeout_caps_the_wait_under_a_steady_stream(stack: Stack) -> None:
    # An event every 0.4 s never leaves the 1 s quiet period; the 3 s timeout starts a run anyway.
    started = time.time()
    sent = []
    while time.time() - started < 4.5:
        sent.append(stack.server.send("flow/debounced", {"user": "stream", "seq": len(sent)}))
        time.sleep(0.4)

    def stream_runs() -> list[dict[str, Any]]:
        return [e for e in executions(stack, "debounced") if e["data"]["user"] == "stream"]

    first = wait_until(stream_runs, timeout=10, what="a run despite the steady stream")[0]
    assert first["t"] - started < 4.5, "the timeout started a run while events kept coming"
    assert (
        0 < first["data"]["seq"] < len(sent) - 1
    )  # the latest event at the timeout, not the last sent
    wait_until(lambda: len(stream_runs()) == 2, timeout=10, what="the next period's run")


def test_batches_never_exceed_max_size_and_start_at_the_timeout(stack: Stack) -> None:
    sent_at = time.time()
    for seq in range(12):
        stack.server.send("flow/batched", {"group": "g1", "seq": seq})

    def batches() -> list[dict[str, Any]]:
        return [e for e in executions(stack, "batched") if e["data"]["group"] == "g1"]

    wait_until(
        lambda: sum(len(b["data"]["seqs"]) for b in batches()) >= 12,
        timeout=20,
        what="every event batched",
    )
    got = batches()
    sizes = sorted(len(b["data"]["seqs"]) for b in got)
    assert sizes == [2, 5, 5], sizes
    assert sorted(s for b in got for s in b["data"]["seqs"]) == list(range(12))  # each event once
    partial = next(b for b in got if len(b["data"]["seqs"]) == 2)
    assert partial["t"] - sent_at >= 1.9, "a partial batch waits for its 2 s timeout"


def test_slots_of_steps_in_flight_when_the_server_dies_are_released(stack: Stack) -> None:
    events = [stack.server.send("flow/bounded", {"tenant": "crash", "i": i}) for i in range(6)]

    def in_flight() -> bool:
        mine = [e for e in stack.app.executions() if e["data"].get("tenant") == "crash"]
        return sum(1 for e in mine if e["step"] == "first-start") >= 3

    wait_until(in_flight, timeout=20, what="three steps in flight")
    stack.server.kill()  # three slots are held by steps whose server just died
    time.sleep(0.5)
    stack.server.start_and_wait()
    for event_id in events:
        assert stack.server.wait_for_run(event_id, timeout=90)["status"] == "Completed", (
            stack.logs()
        )
