"""The fan-in rule: when a run goes on after some of its steps settle."""

from __future__ import annotations

import pytest

from stepwise.server.flow.fanin import SettledStep, goes_on, resets_step_planning

INLINE = SettledStep(fresh=True, was_open=False)  # a step the SDK ran inside the call
SINGLE = SettledStep(fresh=True, was_open=True)  # a planned step on its own
IN_BATCH = SettledStep(fresh=True, was_open=True, batch=True)
IN_RACE = SettledStep(fresh=True, was_open=True, race=True)
DUPLICATE = SettledStep(fresh=False, was_open=False)  # a result already stored
ABANDONED_IN_BATCH = SettledStep(fresh=False, was_open=True, batch=True)


def never_asked() -> int:
    raise AssertionError("the count of open batch steps was not needed here")


@pytest.mark.parametrize("step", [INLINE, SINGLE, IN_RACE])
def test_a_step_outside_a_batch_lets_the_run_go_on(step: SettledStep) -> None:
    assert goes_on([step], never_asked) is True


@pytest.mark.parametrize(("left", "expected"), [(0, True), (1, False), (999, False)])
def test_a_batch_goes_on_after_its_last_step(left: int, expected: bool) -> None:
    assert goes_on([IN_BATCH], lambda: left) is expected
    assert goes_on([ABANDONED_IN_BATCH], lambda: left) is expected


def test_a_duplicate_result_changes_nothing() -> None:
    assert goes_on([DUPLICATE], never_asked) is False
    assert goes_on([], never_asked) is False


def test_one_step_outside_a_batch_is_enough_among_several() -> None:
    assert goes_on([IN_BATCH, DUPLICATE, INLINE], never_asked) is True
    assert goes_on([IN_BATCH, DUPLICATE], lambda: 2) is False


@pytest.mark.parametrize(("version", "expected"), [(-1, True), (1, False), (2, True)])
def test_only_request_version_1_keeps_planning_after_a_batch(version: int, expected: bool) -> None:
    assert resets_step_planning(version) is expected
