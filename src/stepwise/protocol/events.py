"""Event payloads and the internal event names the protocol reserves."""

from __future__ import annotations

from typing import Any

FUNCTION_FINISHED = "inngest/function.finished"
FUNCTION_FAILED = "inngest/function.failed"
FUNCTION_CANCELLED = "inngest/function.cancelled"
FUNCTION_INVOKED = "inngest/function.invoked"
SCHEDULED_TIMER = "inngest/scheduled.timer"
RESERVED_PREFIX = "inngest/"

MAX_EVENT_NAME_LENGTH = 512

# ``data._inngest`` is the server's to fill; of what a sender puts there only the W3C trace
# context survives ingest, so a run can continue the sender's trace (OpenTelemetry).
TRACE_FIELDS = {"traceparent": 55, "tracestate": 512}
"""The trace fields kept in ``data._inngest``, with the longest value kept (W3C limits)."""


def trace_fields(meta: object) -> dict[str, str]:
    """The trace context in a sent event's ``data._inngest``; anything else is dropped."""
    if not isinstance(meta, dict):
        return {}
    return {
        key: value
        for key, limit in TRACE_FIELDS.items()
        if isinstance((value := meta.get(key)), str) and 0 < len(value) <= limit
    }


def event_to_wire(
    *,
    name: str,
    data: dict[str, Any],
    id: str,
    ts: int,
    user: dict[str, Any] | None = None,
    v: str | None = None,
) -> dict[str, Any]:
    """The event object as SDKs receive it: ``user`` always present, ``ts`` an integer."""
    out: dict[str, Any] = {"name": name, "data": data, "id": id, "ts": int(ts), "user": user or {}}
    if v is not None:
        out["v"] = v
    return out
