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
