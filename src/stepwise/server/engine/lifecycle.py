"""How runs end: their status, the events that report it, and cancellation."""

from __future__ import annotations

from typing import Any

from ... import protocol
from ...protocol import WireError
from ...protocol import events as ev
from ..store.records import (
    EventRecord,
    HistoryEntry,
    HistoryKind,
    RunChange,
    RunRecord,
    RunState,
    RunStatus,
    RunUpdate,
)
from .scheduler import Scheduler

FINISH_EVENTS = frozenset({ev.FUNCTION_FINISHED, ev.FUNCTION_FAILED, ev.FUNCTION_CANCELLED})

_EXTRA_EVENT = {
    RunStatus.FAILED: ev.FUNCTION_FAILED,
    RunStatus.CANCELLED: ev.FUNCTION_CANCELLED,
}


def standard_error(error: dict[str, Any]) -> dict[str, Any]:
    """The error object runs and finish events carry: ``{name, message, stack?, error}``."""
    wire = WireError.from_wire(error).to_wire()
    wire.setdefault("error", f"{wire['name']}: {wire['message']}")
    return wire


def reports_its_end(state: RunState) -> bool:
    """False for runs started by a finish event: the reference does not re-report those
    recursively, which also keeps a function listening on finishes from looping."""
    return not (state.events and state.events[0].name in FINISH_EVENTS)


def end_events(
    run: RunRecord,
    events: list[EventRecord],
    now: int,
    status: RunStatus,
    *,
    output: tuple[Any] | None = None,
    error: dict[str, Any] | None = None,
) -> list[EventRecord]:
    """``inngest/function.finished``, preceded by ``.failed`` or ``.cancelled`` when so."""
    wire_events = [e.to_wire() for e in events]
    data: dict[str, Any] = {
        "function_id": run.function_slug,
        "run_id": run.id,
        "event": wire_events[0] if wire_events else {},
        "events": wire_events,
    }
    if error is not None:
        data["error"] = error
    elif output is not None:
        data["result"] = output[0]
    if run.correlation_id:
        data["correlation_id"] = run.correlation_id
    data["_inngest"] = {"status": status.value}
    names = (
        [_EXTRA_EVENT[status], ev.FUNCTION_FINISHED]
        if status in _EXTRA_EVENT
        else [ev.FUNCTION_FINISHED]
    )
    out = []
    for name in names:
        internal = protocol.new_ulid(now)
        # function.failed and .cancelled carry the run id as their event id, as the reference does.
        event_id = internal if name == ev.FUNCTION_FINISHED else run.id
        out.append(
            EventRecord(
                internal_id=internal,
                id=event_id,
                name=name,
                data=data,
                user={},
                ts=now,
                v=None,
                received_at=now,
            )
        )
    return out


def cancel_change(
    state: RunState,
    scheduler: Scheduler,
    now: int,
    reason: str,
    *,
    consume_pause: str | None = None,
) -> RunChange:
    """Cancel an active run: status, no more jobs or pauses, and the events that say so.

    A step in flight when this commits loses its lease, so its result is dropped.
    """
    error = standard_error({"name": "FunctionCancelledError", "message": reason})
    ingest = None
    if reports_its_end(state):
        events = end_events(state.run, state.events, now, RunStatus.CANCELLED, error=error)
        ingest = scheduler.plan(events, now)
    return RunChange(
        run_id=state.run.id,
        consume_pause=consume_pause,
        require_active=True,
        run_update=RunUpdate(status=RunStatus.CANCELLED, error=error, ended_at=now),
        history=[HistoryEntry(HistoryKind.RUN_CANCELLED, now, data={"reason": reason})],
        ingest=ingest,
        end_run=True,
    )
