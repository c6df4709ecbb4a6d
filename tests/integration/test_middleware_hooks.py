"""Middleware hooks against the real server: each runs once per request (and step), in
order; memoized steps are not wrapped again; ``finished`` once per run; retries and
failures reach ``transform_output``; outputs changed by middleware are what the server
stores. ``def`` and ``async def`` functions, parallel steps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.harness import Stack

# The SDK's middleware is under test, not the store: one backend is enough.
pytestmark = pytest.mark.backends("sqlite")

RUN_HOOKS = (
    "transform_input",
    "before_memoization",
    "after_memoization",
    "before_execution",
    "after_execution",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp(f"hooks-{backend}")
    with Stack(tmp, "middleware_app", server_args=["--retry-interval", "1"], functions=5) as s:
        yield s


def requests_of(stack: Stack, run_id: str, tag: str = "client") -> list[list[dict[str, Any]]]:
    """The hooks one middleware saw in a run, by request, in the order requests began."""
    requests: dict[str, list[dict[str, Any]]] = {}
    for line in stack.app.ledger_of("hook", run_id=run_id, tag=tag):
        requests.setdefault(line["request"], []).append(line)
    return list(requests.values())


def check_each_request(requests: list[list[dict[str, Any]]]) -> None:
    for request in requests:
        hooks = [line["hook"] for line in request]
        assert hooks[0] == "transform_input" and hooks[-1] == "before_response", hooks
        counts = Counter(hooks)
        assert all(counts[hook] <= 1 for hook in (*RUN_HOOKS, "finished", "before_response"))
        order = [h for h in hooks if h in RUN_HOOKS]
        assert order == list(RUN_HOOKS), hooks  # every request here reaches new code
        # wrap_step between before_execution and after_execution; transform_output after.
        if "wrap_step" in counts:
            assert hooks.index("before_execution") < hooks.index("wrap_step")
            assert hooks.index("wrap_step") < hooks.index("after_execution")
        assert hooks.index("after_execution") < hooks.index("transform_output")


@pytest.mark.parametrize(
    ("event", "fn"), [("hooks/async", "async-flow"), ("hooks/sync", "sync-flow")]
)
def test_hooks_over_a_run_with_a_retried_step(stack: Stack, event: str, fn: str) -> None:
    run = stack.server.wait_for_run(stack.server.send(event), timeout=60)
    assert run["status"] == "Completed", stack.logs()
    tags = ["client", "fn"] if fn == "sync-flow" else ["client"]
    expected = {"a": 1, "b": 2, "tag": tags[-1]} | {f"seen_by_{t}": True for t in tags}
    assert run["output"] == expected
    requests = requests_of(stack, run["run_id"])
    check_each_request(requests)
    # a once; b twice (attempt 0 fails, attempt 1 succeeds); never a memoized replay.
    wrapped = [
        (line["step"], line["attempt"])
        for r in requests
        for line in r
        if line["hook"] == "wrap_step"
    ]
    assert wrapped == [("a", 0), ("b", 0), ("b", 1)]
    outputs = [
        (line["step"], line["error"])
        for r in requests
        for line in r
        if line["hook"] == "transform_output"
    ]
    assert outputs == [("a", None), ("b", "RuntimeError"), ("b", None), (None, None)]
    finished = [line for r in requests for line in r if line["hook"] == "finished"]
    assert len(finished) == 1 and finished[0] is requests[-1][-2]
    assert [len(r) for r in requests] == [
        len(r) for r in requests_of(stack, run["run_id"], tags[-1])
    ]


def test_function_middleware_runs_inside_the_client_middleware(stack: Stack) -> None:
    run = stack.server.wait_for_run(stack.server.send("hooks/sync"), timeout=60)
    lines = [
        (line["tag"], line["hook"])
        for line in stack.app.executions()
        if line.get("run_id") == run["run_id"]
    ]
    first_request = lines[: lines.index(("fn", "before_response")) + 2]  # no parallel steps
    assert first_request == [
        ("client", "transform_input"),
        ("fn", "transform_input"),
        ("client", "before_memoization"),
        ("fn", "before_memoization"),
        ("fn", "after_memoization"),
        ("client", "after_memoization"),
        ("client", "before_execution"),
        ("fn", "before_execution"),
        ("client", "wrap_step"),
        ("fn", "wrap_step"),
        ("fn", "after_execution"),
        ("client", "after_execution"),
        ("fn", "transform_output"),
        ("client", "transform_output"),
        ("fn", "before_response"),
        ("client", "before_response"),
    ]


def test_parallel_steps(stack: Stack) -> None:
    run = stack.server.wait_for_run(stack.server.send("hooks/fan"), timeout=60)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"joined": "LR", "seen_by_client": True}
    requests = requests_of(stack, run["run_id"])
    check_each_request(requests)
    wrapped = sorted(line["step"] for r in requests for line in r if line["hook"] == "wrap_step")
    assert wrapped == ["join", "left", "right"]
    planned = [
        line["step"]
        for r in requests
        for line in r
        if line["hook"] == "transform_output" and not line["has_data"]
    ]
    assert sorted(planned) == ["left", "right"]
    assert sum(line["hook"] == "finished" for r in requests for line in r) == 1


def test_a_failing_function_is_finished_once_after_its_last_attempt(stack: Stack) -> None:
    run = stack.server.wait_for_run(stack.server.send("hooks/fail"), timeout=60)
    assert run["status"] == "Failed", stack.logs()
    requests = requests_of(stack, run["run_id"])
    check_each_request(requests)
    errors = [
        (line["attempt"], line["error"])
        for r in requests
        for line in r
        if line["hook"] == "transform_output" and line["step"] is None
    ]
    assert errors == [(0, "RuntimeError"), (1, "RuntimeError")]
    finished = [line for r in requests for line in r if line["hook"] == "finished"]
    assert [(f["attempt"], f["error"]) for f in finished] == [(1, "RuntimeError")]


def test_a_checkpointing_function_sees_each_hook_once_per_request_and_step(stack: Stack) -> None:
    run = stack.server.wait_for_run(stack.server.send("hooks/checkpointed"), timeout=60)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"a": 1, "b": 2, "c": 3, "seen_by_client": True}
    requests = requests_of(stack, run["run_id"])
    # a saved by a checkpoint and b's first try | b's retry hands b back | c and the end.
    assert [r[0]["attempt"] for r in requests] == [0, 1, 0]
    for request in requests:
        hooks = [line["hook"] for line in request]
        assert hooks[0] == "transform_input" and hooks[-1] == "before_response", hooks
        counts = Counter(hooks)
        assert all(counts[hook] == 1 for hook in (*RUN_HOOKS, "before_response")), hooks
    steps = [
        (line["hook"], line.get("step"), line.get("error"))
        for r in requests
        for line in r
        if line["hook"] in ("wrap_step", "transform_output")
    ]
    # A checkpointed step's output is transformed before it is saved, so before the next
    # step runs; the step that ends a request is transformed as it is answered.
    assert steps == [
        ("wrap_step", "a", None),
        ("transform_output", "a", None),
        ("wrap_step", "b", None),
        ("transform_output", "b", "RuntimeError"),
        ("wrap_step", "b", None),
        ("transform_output", "b", None),
        ("wrap_step", "c", None),
        ("transform_output", "c", None),
        ("transform_output", None, None),
    ]
    finished = [line for r in requests for line in r if line["hook"] == "finished"]
    assert len(finished) == 1 and finished[0] is requests[-1][-2]
