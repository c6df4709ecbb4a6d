"""The run limits, each a clear error: step output, run state (and use_api), step count."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.harness import Stack


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("limits"),
        "limits_app",
        server_args=["--retry-interval", "1"],
        functions=3,
    ) as s:
        yield s


def test_a_step_output_over_4_mb_fails_the_step(stack: Stack) -> None:
    run = stack.server.wait_for_run(stack.server.send("limits/big-output"), timeout=60)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"].startswith("OutputTooLargeError: step output is over 4194304 bytes")


def test_state_over_4_mb_is_fetched_through_the_api(stack: Stack) -> None:
    run = stack.server.wait_for_run(stack.server.send("limits/big-state"), timeout=60)
    assert run["status"] == "Completed", stack.logs()
    chunk = int(1.5 * 1024 * 1024)
    assert run["output"] == [chunk, chunk, chunk, 3 * chunk]


def test_more_than_1000_steps_fail_the_run(stack: Stack) -> None:
    ok = stack.server.wait_for_run(
        stack.server.send("limits/many-steps", {"steps": 1000}), timeout=120
    )
    assert ok["status"] == "Completed", stack.logs()
    assert ok["output"] == 1000
    over = stack.server.wait_for_run(
        stack.server.send("limits/many-steps", {"steps": 1001}), timeout=120
    )
    assert over["status"] == "Failed"
    assert over["output"]["name"] == "StepLimitExceededError"
