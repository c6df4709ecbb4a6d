"""Function options beyond retries (cancellation, timeouts) and the durations they take."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import ConfigError
from ..protocol import DurationError, format_duration, parse_duration

Duration = str | int | float | timedelta
"""A Go-style string ("1h30m"), seconds, or a ``timedelta``."""

MAX_DURATION = timedelta(days=366)
MAX_CANCEL_ON = 5


def duration_to_wire(value: Duration, *, what: str) -> str:
    """The duration string the protocol carries; ``ConfigError`` if invalid or over 366 days."""
    return format_duration(duration_to_delta(value, what=what))


def duration_to_delta(value: Duration, *, what: str) -> timedelta:
    """``value`` as a ``timedelta``; ``ConfigError`` if invalid, negative or over 366 days."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a duration, not a bool")
    if isinstance(value, str):
        try:
            delta = parse_duration(value)
        except DurationError as exc:
            raise ConfigError(f"{what}: {exc}") from exc
    elif isinstance(value, timedelta):
        delta = value
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise ConfigError(f"{what} must be a finite number of seconds")
        if abs(value) > MAX_DURATION.total_seconds() * 2:
            raise ConfigError(f"{what} must be at most 366 days")
        delta = timedelta(seconds=value)
    else:
        raise ConfigError(f"{what} must be a duration string, seconds or a timedelta")
    if delta < timedelta(0):
        raise ConfigError(f"{what} must not be negative")
    if delta > MAX_DURATION:
        raise ConfigError(f"{what} must be at most 366 days")
    return delta


def condition(if_: str | None, match: str | None, *, what: str) -> str | None:
    """One CEL condition from ``if_`` or ``match`` (``"data.x"`` => both events agree on it)."""
    if if_ is not None and match is not None:
        raise ConfigError(f"{what}: pass if_ or match, not both")
    if match is not None:
        if not isinstance(match, str) or not match.strip():
            raise ConfigError(f"{what}: match must be a non-empty field path such as 'data.id'")
        field_path = match.strip()
        # ``event`` is the run's triggering event, ``async`` the incoming one (reference §4.2).
        return f"event.{field_path} == async.{field_path}"
    if if_ is not None and (not isinstance(if_, str) or not if_.strip()):
        raise ConfigError(f"{what}: if_ must be a non-empty CEL expression")
    return if_


@dataclass(frozen=True, slots=True)
class CancelOn:
    """Cancel a run when ``event`` arrives (and ``if_``/``match`` holds) within ``timeout``."""

    event: str
    if_: str | None = None
    match: str | None = None
    timeout: Duration | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not self.event:
            raise ConfigError("CancelOn needs an event name")
        condition(self.if_, self.match, what="CancelOn")
        if self.timeout is not None:
            duration_to_wire(self.timeout, what="CancelOn timeout")

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event}
        expression = condition(self.if_, self.match, what="CancelOn")
        if expression is not None:
            out["if"] = expression
        if self.timeout is not None:
            out["timeout"] = duration_to_wire(self.timeout, what="CancelOn timeout")
        return out


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Cancel a run not started within ``start`` of its event, or not finished within ``finish``."""

    start: Duration | None = None
    finish: Duration | None = None

    def __post_init__(self) -> None:
        if self.start is None and self.finish is None:
            raise ConfigError("Timeouts needs start, finish or both")
        self.to_wire()

    def to_wire(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.start is not None:
            out["start"] = duration_to_wire(self.start, what="Timeouts start")
        if self.finish is not None:
            out["finish"] = duration_to_wire(self.finish, what="Timeouts finish")
        return out


def normalize_cancel_on(
    cancel_on: CancelOn | list[CancelOn] | tuple[CancelOn, ...] | None,
) -> tuple[CancelOn, ...] | None:
    if cancel_on is None:
        return None
    items = (cancel_on,) if isinstance(cancel_on, CancelOn) else tuple(cancel_on)
    for item in items:
        if not isinstance(item, CancelOn):
            raise ConfigError(f"cancel_on takes CancelOn objects, not {item!r}")
    if len(items) > MAX_CANCEL_ON:
        raise ConfigError(f"a function takes at most {MAX_CANCEL_ON} cancel_on entries")
    return items or None
