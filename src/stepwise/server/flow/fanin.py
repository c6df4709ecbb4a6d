"""Parallel fan-in: when a run goes on after some of its steps settle.

A run has a set of open steps: steps it planned (a targeted call, a sleep, a wait, an
invoke, a fetch) that have no result yet. Each open step remembers whether it belongs to
a parallel batch (request version 2 and later: the SDK is called again once, when the
batch's last step settles) and whether the batch races (the SDK is called again after
every settled step). A step that was never open, such as one the SDK ran inline, always
lets the run go on.

The store loads the open-step rows a transition touches and the count of batch steps
still open, inside the transaction that writes the results, then asks ``goes_on``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SettledStep:
    """What the store found when it recorded one step's outcome."""

    fresh: bool  # its result was written now (False: it already had one)
    was_open: bool  # it had an open-step row, now removed
    batch: bool = False
    race: bool = False


def goes_on(settled: list[SettledStep], batch_steps_left: Callable[[], int]) -> bool:
    """Whether the run's next call is due after ``settled``.

    ``batch_steps_left`` counts the open steps of a parallel batch that remain after these
    settled; it is only asked when the answer depends on it (the store reads it then).
    A step whose result was already recorded changes nothing: its own settling already
    decided, so a late duplicate (a redelivered result, a stale reply) never calls twice.
    """
    counted = [s for s in settled if s.fresh or s.was_open]
    if not counted:
        return False
    if any(not s.was_open or s.race or not s.batch for s in counted):
        return True
    return batch_steps_left() == 0


def resets_step_planning(request_version: int) -> bool:
    """Whether the run leaves forced step planning when it goes on.

    Request version 2 and later re-enable inline execution once a parallel batch has
    drained; version 1 (JS v3) keeps planning every step for the rest of the run.
    """
    return request_version != 1
