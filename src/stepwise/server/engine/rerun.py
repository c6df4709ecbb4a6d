"""Rerunning a run: a new run of the same function with the same triggering events.

A rerun is deliberate, so the idempotency that dedupes a retried send must not dedupe
it: it claims a key of its own. Everything else (concurrency, throttle, rate limit,
singleton, priority, timeouts, cancel-on) applies to it as to any run. It is never held
by a debounce or a batch: its events already went through those once.

Rerun from a step: the new run starts with the results of the steps the original
completed before that step (``plan_rerun``), so the SDK replays past them and executes
that step and everything after it again.
"""

from __future__ import annotations

import dataclasses

from ..store.records import HistoryEntry, HistoryKind, NewRun, RunState, Settled
from .endpoints import is_endpoint
from .registry import Registry
from .scheduler import Scheduler


class RerunRefused(Exception):
    """A rerun the server will not start; ``code`` goes in the error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def seed_steps(
    original: RunState, history: list[HistoryEntry], from_step: str, now: int
) -> tuple[Settled, ...]:
    """The results a rerun from ``from_step`` starts with: every step the original
    completed before it, in the original's completion order.

    "Before" is that order (the store's ``seq``), not the code's: of parallel steps, the
    ones that happened to finish earlier keep their results and the others run again. The
    server cannot know more: it sees the steps a run reported, not the code around them.
    """
    order = [step.step_id for step in original.steps]
    if from_step not in order:
        raise RerunRefused(
            400,
            "step_not_completed",
            f"the run {original.run.id} never completed a step with id {from_step!r}",
        )
    names = {
        entry.step_id: entry.name
        for entry in history
        if entry.kind in (HistoryKind.STEP_COMPLETED, HistoryKind.STEP_FAILED)
    }
    seeded = []
    for step in original.steps[: order.index(from_step)]:
        # Told on the new run's timeline as completed now, saying where the result came from.
        entry = HistoryEntry(
            HistoryKind.STEP_COMPLETED,
            now,
            step.step_id,
            names.get(step.step_id),
            data={"copied_from_run_id": original.run.id},
        )
        seeded.append(Settled(step.step_id, step.memo, (entry,)))
    return tuple(seeded)


def plan_rerun(
    registry: Registry,
    original: RunState,
    now: int,
    *,
    seed: tuple[Settled, ...] = (),
) -> NewRun:
    """The new run that reruns ``original``, starting with ``seed`` (see ``seed_steps``)."""
    run = original.run
    spec = registry.get(run.function_slug)
    if spec is None:
        raise RerunRefused(
            409,
            "function_not_found",
            f"the function {run.function_slug!r} of run {run.id} is no longer synced:"
            " there is nothing to rerun it with",
        )
    if is_endpoint(spec):
        raise RerunRefused(
            409,
            "endpoint_run",
            f"run {run.id} is a durable endpoint's: only a request to its handler starts one",
        )
    by_id = {event.internal_id: event for event in original.events}
    if not run.event_ids or any(event_id not in by_id for event_id in run.event_ids):
        raise RerunRefused(
            409,
            "events_not_found",
            f"the events that triggered run {run.id} are no longer stored",
        )
    first = by_id[run.event_ids[0]]
    new = Scheduler.new_run(spec, first, now, cron=run.cron, hold=False)
    return dataclasses.replace(
        new,
        # A batch's run gets all of its events again, and flow control keys off the first,
        # as for the original.
        event_ids=run.event_ids,
        idempotency_key=f"rerun:{new.id}",
        original_run_id=run.id,
        seed_steps=seed,
    )
