"""Which runs a bulk cancellation hits: one rule for the job that cancels and the preview.

A bulk cancellation hits the active runs of its function created inside its window whose
first event matches its ``if`` expression (every run of the window when it has none).
The store pages through the window (``Store.active_runs``); the expression is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .. import expr
from ..store.base import Store
from ..store.records import RunState

# Runs read per page, by the cancelling job and by the preview alike.
CANCEL_PAGE = 200


class Window(Protocol):
    """What a bulk cancellation matches: a stored ``CancellationRecord`` or a proposed one."""

    @property
    def function_slug(self) -> str: ...
    @property
    def started_before(self) -> int: ...
    @property
    def started_after(self) -> int | None: ...
    @property
    def expression(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ProposedCancellation:
    """A bulk cancellation not created yet, for its preview."""

    function_slug: str
    started_before: int
    started_after: int | None
    expression: str | None


def hits(window: Window, state: RunState) -> bool:
    """Whether a run of the window's page is one the cancellation cancels."""
    if not window.expression:
        return True
    event = state.events[0].to_wire() if state.events else {}
    return expr.matches(window.expression, {"event": event})


async def page(store: Store, window: Window, after_run_id: str) -> list[RunState]:
    """The next page of the window's active runs, after ``after_run_id`` ("" for the first)."""
    return await store.active_runs(
        window.function_slug,
        after_run_id=after_run_id,
        created_before=window.started_before,
        created_after=window.started_after,
        limit=CANCEL_PAGE,
    )


@dataclass(frozen=True, slots=True)
class Preview:
    count: int
    run_ids: list[str]  # the first few, by run id


async def preview(store: Store, window: Window, *, sample: int) -> Preview:
    """How many runs a cancellation of ``window`` would cancel now, and the first few."""
    count, after = 0, ""
    run_ids: list[str] = []
    while True:
        states = await page(store, window, after)
        for state in states:
            if hits(window, state):
                count += 1
                if len(run_ids) < sample:
                    run_ids.append(state.run.id)
        if len(states) < CANCEL_PAGE:
            return Preview(count=count, run_ids=run_ids)
        after = states[-1].run.id
