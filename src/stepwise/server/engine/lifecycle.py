"""How runs end: their status, the events that report it, and cancellation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import protocol
from ...protocol import WireError
from ...protocol import events as ev
from ...protocol.sessions import sessions_of
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
    """The error object finish events carry: ``{name, message, stack?, error}``."""
    wire = WireError.from_wire(error).to_wire()
    wire.setdefault("error", f"{wire['name']}: {wire['message']}")
    return wire


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a run failed, in the two shapes the reference gives it.

    ``output`` is what ``GET /v1/runs/{id}`` shows: the app's error body exactly as its
    SDK sent it, or our own ``{name, message}`` when the server failed the run.
    ``event_error`` is the ``data.error`` of ``inngest/function.failed`` and
    ``.finished``: ``{error, name, message, stack?, cause?}``, where ``error`` says how
    the attempt failed (``invalid status code: 500``).
    """

    output: Any
    event_error: dict[str, Any]

    @classmethod
    def of_server(cls, name: str, message: str) -> Failure:
        """A failure the server decided (a limit, a timeout, an unreachable app)."""
        return cls(
            {"name": name, "message": message}, {"error": message, "name": name, "message": message}
        )

    @classmethod
    def of_reply(
        cls, status: int, body: Any, raw: bytes, *, from_sdk: bool, no_retry: bool = False
    ) -> Failure:
        """The last failed attempt was an HTTP answer with this status and body.

        The events' ``error`` says how the attempt failed, as the reference words it: the
        status code, or ``NonRetriableError`` when the SDK said not to retry.
        """
        how = "NonRetriableError" if no_retry else f"invalid status code: {status}"
        if not from_sdk:
            return cls.of_upstream(status, raw)
        if not isinstance(body, dict):
            text = body if isinstance(body, str) else raw.decode("utf-8", "replace")
            body = {"name": "Error", "message": text}
        return cls(body, _event_error(body, how))

    @classmethod
    def of_upstream(cls, status: int, raw: bytes) -> Failure:
        """Something in front of the app answered, not its SDK (a proxy, a crash page)."""
        message = f"Your server returned HTTP {status} before the SDK responded."
        stack = (
            "No step output was produced before the request failed: a proxy or load"
            " balancer in front of the app may have answered, or the app could not."
        )
        if raw:
            shown = raw[:_UPSTREAM_BODY_SHOWN].decode("utf-8", "replace")
            cut = "\n(truncated)" if len(raw) > _UPSTREAM_BODY_SHOWN else ""
            stack = f"{stack}\n\nThe response was:\n{shown}{cut}"
        error = {"error": message, "name": UPSTREAM_ERROR_NAME, "message": message, "stack": stack}
        return cls(error, dict(error))


# The name the reference gives a non-2xx answer that did not come from an SDK.
UPSTREAM_ERROR_NAME = "Server returned a fatal error"
_UPSTREAM_BODY_SHOWN = 8192


def _event_error(body: dict[str, Any], how: str) -> dict[str, Any]:
    """``{error, name, message, stack?, cause?}`` from an SDK's error body."""
    nested = body.get("error")
    source: dict[str, Any] = nested if isinstance(nested, dict) else body
    out: dict[str, Any] = {"error": how, "name": "Error", "message": how}
    for key in ("error", "name", "message", "stack"):
        value = source.get(key)
        if isinstance(value, str) and value:
            out[key] = value
    if "cause" in source:
        out["cause"] = source["cause"]
    return out


def step_error(raw: object) -> dict[str, Any]:
    """A step's error as it is memoized: ``{name, message, stack?, data?, cause?}``."""
    wire = WireError.from_wire(raw)
    out: dict[str, Any] = {"name": wire.name, "message": wire.message}
    if wire.stack:
        out["stack"] = wire.stack
    for key in ("data", "cause"):
        if wire.extra.get(key) is not None:
            out[key] = wire.extra[key]
    return out


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
    """``inngest/function.finished``, followed by ``.failed`` or ``.cancelled`` when so.

    ``error`` is a ``Failure.event_error`` (or a cancellation's standard error); a failed
    run's ``output`` is its ``Failure.output``, reported as ``result`` as the reference does.
    """
    wire_events = [e.to_wire() for e in events]
    data: dict[str, Any] = {
        "function_id": run.function_slug,
        "run_id": run.id,
        "event": wire_events[0] if wire_events else {},
        "events": wire_events,
    }
    if error is not None:
        data["error"] = error
    if output is not None:
        data["result"] = output[0]
    if run.correlation_id:
        data["correlation_id"] = run.correlation_id
    data["_inngest"] = {"status": status.value}
    names = [ev.FUNCTION_FINISHED, *([_EXTRA_EVENT[status]] if status in _EXTRA_EVENT else [])]
    # The triggering event's sessions go with the events that tell of the run's end.
    shared = sessions_of(events[0].meta) if events else {}
    meta = {"sessions": shared} if shared else None
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
                meta=meta,
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
        function_slug=state.run.function_slug,
    )
