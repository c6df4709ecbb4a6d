"""A run's state as the server's store keeps it, and the commit of what one job changed.

The commit follows the store's order (``store/sql/transitions.py``): history notes, step
results (the first one wins), abandoned steps, newly opened steps with their jobs and
pauses, a retry of the job, new jobs, and then the run's next call if the fan-in rule
(``flow/fanin.py``, the server's own function) says the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol import REQUEST_VERSION
from ..server.flow import fanin
from ..server.store.records import NewPause, Pause
from ._records import RunRecords
from ._timeline import Job, JobKind, Timeline
from .mocks import as_json
from .results import HistoryItem


@dataclass(slots=True)
class OpenStep:
    """A step the run waits on (planned, sleeping, waiting, invoked)."""

    batch: bool
    race: bool


@dataclass(slots=True)
class Plan:
    """A step to open, with everything it waits on."""

    step_id: str
    batch: bool = False
    race: bool = False
    jobs: list[Job] = field(default_factory=list)
    pause: NewPause | None = None
    history: list[HistoryItem] = field(default_factory=list)
    on_open: Callable[[], object] | None = None
    """Called if the step opens now (not when a reply repeats an open step)."""


@dataclass(slots=True)
class Transition:
    """What one job changes."""

    notes: list[HistoryItem] = field(default_factory=list)
    settled: list[tuple[str, Any, list[HistoryItem]]] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    planned: list[Plan] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    retry_at: int | None = None


class RunStore:
    """Step results by hashed ID (and their order), open steps, pauses, and whether step
    planning is forced; ``clock`` tells the virtual time."""

    def __init__(self, records: RunRecords, timeline: Timeline, clock: Callable[[], int]) -> None:
        self.records = records
        self.timeline = timeline
        self._clock = clock
        self.memos: dict[str, Any] = {}
        self.stack: list[str] = []
        self.open: dict[str, OpenStep] = {}
        self.pauses: dict[str, NewPause] = {}
        self.force_step_plan = False

    def discovery(self, after: str) -> Job:
        """The run's next call, keyed by the step that settled before it (``calls.py``)."""
        return self.timeline.job(JobKind.CALL, self._clock(), key=f"discovery:{after}")

    def commit(self, job: Job | None, t: Transition, *, going_on: bool) -> list[str]:
        """Apply ``t``; the steps whose results were stored now. ``going_on``: the run has
        not ended, so it may be called again."""
        self.records.history.extend(t.notes)
        fresh: list[str] = []
        outcomes = [
            self._settle(step_id, memo, entries, fresh) for step_id, memo, entries in t.settled
        ]
        outcomes += [self._close(step_id, fresh=False) for step_id in t.abandoned]
        opened = False
        for plan in t.planned:
            opened = self._plan(plan) or opened
        if t.retry_at is not None and job is not None:
            # The same job again, one attempt later.
            self.timeline.add(
                self.timeline.job(
                    job.kind,
                    t.retry_at,
                    step_id=job.step_id,
                    attempt=job.attempt + 1,
                    key=job.key,
                    payload=job.payload,
                )
            )
        for new in t.jobs:
            self.timeline.add(new)
        last = [*(s[0] for s in t.settled), *t.abandoned]
        # A step opened here calls the function again when it settles.
        if going_on and not opened and last:
            self._go_on(outcomes, last[-1])
        return fresh

    def _settle(
        self, step_id: str, memo: Any, entries: list[HistoryItem], fresh: list[str]
    ) -> fanin.SettledStep:
        stored = step_id not in self.memos
        if stored:
            self.memos[step_id] = as_json(memo, f"step {step_id}")
            self.stack.append(step_id)
            self.records.history.extend(entries)
            self.records.step_ended(step_id, self.memos[step_id])
            fresh.append(step_id)
        return self._close(step_id, stored)

    def _close(self, step_id: str, fresh: bool) -> fanin.SettledStep:
        opened = self.open.pop(step_id, None)
        if opened is None:
            return fanin.SettledStep(fresh=fresh, was_open=False)
        return fanin.SettledStep(fresh=fresh, was_open=True, batch=opened.batch, race=opened.race)

    def _plan(self, plan: Plan) -> bool:
        if plan.step_id in self.memos or plan.step_id in self.open:
            return False
        self.open[plan.step_id] = OpenStep(plan.batch, plan.race)
        for new in plan.jobs:
            self.timeline.add(new)
        if plan.pause is not None:
            self.pauses[plan.pause.key] = plan.pause
        self.records.history.extend(plan.history)
        if plan.on_open is not None:
            plan.on_open()
        return True

    def _go_on(self, outcomes: list[fanin.SettledStep], after: str) -> None:
        def batch_steps_left() -> int:
            return sum(1 for o in self.open.values() if o.batch and not o.race)

        if not fanin.goes_on(outcomes, batch_steps_left):
            return
        self.timeline.add(self.discovery(after))
        if self.force_step_plan and fanin.resets_step_planning(REQUEST_VERSION):
            self.force_step_plan = False


def as_pause(pause: NewPause) -> Pause:
    return Pause(
        id=0,
        key=pause.key,
        run_id=pause.run_id,
        kind=pause.kind,
        created_at=pause.created_at,
        step_id=pause.step_id,
        event_name=pause.event_name,
        expression=pause.expression,
        signal=pause.signal,
        expires_at=pause.expires_at,
        data=pause.data,
    )
