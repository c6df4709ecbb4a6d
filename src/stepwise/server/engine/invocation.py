"""Invoking a function directly (``POST /v1/functions/{slug}/invoke``, the dashboard's form).

The run starts as a ``step.invoke`` child's does (``Executor._invoke``): from an
``inngest/function.invoked`` event that names the function, so no other function's
trigger sees it, and with every flow control of the function applied. It has no parent:
nobody waits on its ``function.finished``, so it carries no correlation id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import protocol
from ...protocol import events as ev
from ..store.records import EventRecord, Ingest
from .registry import FunctionSpec
from .scheduler import Scheduler


@dataclass(frozen=True, slots=True)
class Invocation:
    """What an invoke did: the event it stored, and the run it started if it started one."""

    event_id: str
    run_id: str | None
    # Why no run started now: the function's debounce or batch holds the event (a run
    # starts later), or its idempotency key already started one.
    held: str | None


def plan_invocation(spec: FunctionSpec, data: dict[str, Any], now: int) -> Ingest:
    """The invoked event and the run of ``spec`` it starts."""
    internal = protocol.new_ulid(now)
    event = EventRecord(
        internal_id=internal,
        id=internal,
        name=ev.FUNCTION_INVOKED,
        data={**data, "_inngest": {"fn_id": spec.slug}},
        user={},
        ts=now,
        v=None,
        received_at=now,
    )
    return Ingest(events=[event], runs=[Scheduler.new_run(spec, event, now)])


def held_reason(batch: Ingest, created: list[str]) -> str | None:
    """Why ``batch``'s run did not start now (None if a run started: a full batch starts
    the batch's run, whose id is not the planned one)."""
    if created:
        return None
    [run] = batch.runs
    if run.debounce is not None:
        return "debounce"
    if run.batch is not None:
        return "batch"
    return "idempotency"
