"""Flow control under load: thousands of events over many keys, violations counted by the app."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from support.harness import Stack, wait_until


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("flow-load"),
        "flow_app",
        server_args=["--retry-interval", "1"],
        functions=9,
    ) as s:
        yield s


def send_many(stack: Stack, events: list[dict[str, Any]]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(events), 500):
        r = stack.server.http.post("/e/k", content=json.dumps(events[start : start + 500]))
        r.raise_for_status()
        ids += r.json()["ids"]
    return ids


def statuses(stack: Stack, function_slug: str) -> Counter[str]:
    rows = stack.server.query("SELECT status FROM runs WHERE function_slug = ?", (function_slug,))
    return Counter(r[0] for r in rows)


def by_step(stack: Stack, step: str) -> list[dict[str, Any]]:
    return [e for e in stack.app.executions() if e["step"] == step]


def test_rate_limit_over_2000_events_and_50_keys(stack: Stack) -> None:
    events = [
        {"name": "flow/limited", "data": {"tenant": f"t{k}", "i": i}}
        for i in range(40)
        for k in range(50)
    ]
    send_many(stack, events)
    wait_until(
        lambda: sum(statuses(stack, "flow-limited").values()) == 2000,
        timeout=60,
        what="2000 runs decided",
    )
    wait_until(
        lambda: statuses(stack, "flow-limited")["Completed"] == 100,
        timeout=60,
        what="100 runs done",
    )
    assert statuses(stack, "flow-limited") == Counter({"Completed": 100, "Skipped": 1900})
    per_key = Counter(e["data"]["tenant"] for e in by_step(stack, "limited"))
    assert len(per_key) == 50 and set(per_key.values()) == {2}, (
        "two runs per key per minute, no more"
    )


def test_concurrency_over_300_runs_and_10_keys(stack: Stack) -> None:
    events = [
        {"name": "flow/bounded", "data": {"tenant": f"c{k}", "i": i}}
        for i in range(30)
        for k in range(10)
    ]
    send_many(stack, events)
    wait_until(
        lambda: statuses(stack, "flow-bounded")["Completed"] >= 300,
        timeout=240,
        interval=0.5,
        what="300 runs",
    )
    spans: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    for e in stack.app.executions():
        if e["step"] in ("first-start", "first-end", "second-start", "second-end"):
            step, _edge = e["step"].split("-")
            spans[e["data"]["tenant"]][(e["run_id"], step)].append(e["t"])
    for tenant in (f"c{k}" for k in range(10)):
        points = []
        for start, end in spans[tenant].values():
            points += [(start, 1), (end, -1)]
        current = peak = 0
        for _, delta in sorted(points):
            current += delta
            peak = max(peak, current)
        assert len(spans[tenant]) == 60
        assert peak <= 3, f"{tenant}: {peak} steps at once"


def test_debounce_over_20_keys(stack: Stack) -> None:
    events = [
        {"name": "flow/debounced", "data": {"user": f"u{k}", "seq": s}}
        for s in range(5)
        for k in range(20)
    ]
    send_many(stack, events)
    wait_until(
        lambda: statuses(stack, "flow-debounced")["Completed"] >= 20,
        timeout=30,
        what="20 debounced runs",
    )
    runs = [e for e in by_step(stack, "debounced") if e["data"]["user"].startswith("u")]
    assert len(runs) == 20 and all(e["data"]["seq"] == 4 for e in runs), (
        "one run per key, with the last event"
    )


def test_batching_over_500_events_and_10_groups(stack: Stack) -> None:
    events = [
        {"name": "flow/batched", "data": {"group": f"b{k}", "seq": s}}
        for s in range(50)
        for k in range(10)
    ]
    send_many(stack, events)

    def batches() -> list[dict[str, Any]]:
        return [e for e in by_step(stack, "batched") if e["data"]["group"].startswith("b")]

    wait_until(
        lambda: sum(len(b["data"]["seqs"]) for b in batches()) >= 500,
        timeout=60,
        what="500 batched events",
    )
    got = batches()
    assert max(len(b["data"]["seqs"]) for b in got) <= 5
    seen = Counter((b["data"]["group"], s) for b in got for s in b["data"]["seqs"])
    assert len(seen) == 500 and set(seen.values()) == {1}, "every event in exactly one batch"
