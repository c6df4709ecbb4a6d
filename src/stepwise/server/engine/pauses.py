"""Pauses: a run waiting for an event, a signal or an invoked child, or ready to be cancelled.

A pause's expression has the run's own ``event.*`` values interpolated when it is written,
so only ``async.*`` (the incoming event) is left to evaluate. An equality term on ``async``
becomes the pause's index key, so an event finds its candidate pauses by lookup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ... import protocol
from ...protocol import GeneratorOp
from ...protocol import events as ev
from .. import expr
from ..store.records import (
    EventRecord,
    HistoryEntry,
    HistoryKind,
    JobKind,
    NewJob,
    NewPause,
    Pause,
    PauseKind,
    RunChange,
    Settled,
)
from .calls import next_call

MAX_WAIT = timedelta(days=366)
INVOKE_TIMEOUT_ERROR = {
    "name": "InngestInvokeTimeoutError",
    "message": "Timed out waiting for invoked function to complete",
    "error": "InngestInvokeTimeoutError: Timed out waiting for invoked function to complete",
}


class PauseError(ValueError):
    """An op asks for a pause that cannot be written (bad timeout, bad expression)."""


@dataclass(frozen=True, slots=True)
class PlannedPause:
    pause: NewPause
    timeout_job: NewJob | None


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def expiry(timeout: object, now: int, *, default: timedelta | None = None) -> int:
    """When a pause given ``timeout`` (a duration or an RFC 3339 time) expires; max 366 days."""
    current = datetime.fromtimestamp(now / 1000, UTC)
    if timeout is None or timeout == "":
        if default is None:
            return now  # an empty timeout expires at once, as the reference does
        return _ms(current + default)
    if not isinstance(timeout, str):
        raise PauseError(f"timeout must be a duration string, got {timeout!r}")
    try:
        until = protocol.resolve_until(timeout, current)
    except (protocol.DurationError, OverflowError) as exc:
        raise PauseError(f"invalid timeout {timeout!r}") from exc
    return _ms(min(until, current + MAX_WAIT))


def _compile_condition(source: object, trigger: dict[str, Any]) -> tuple[str | None, bool]:
    """``(expression, possible)``: the interpolated expression (None = always true), and
    False when it can never hold (so no pause is needed)."""
    if source is None or source == "":
        return None, True
    if not isinstance(source, str):
        raise PauseError("an 'if' expression must be a string")
    try:
        interpolated = expr.interpolate(source, trigger)
        constant, value = expr.constant_value(interpolated)
    except expr.ExpressionError as exc:
        raise PauseError(str(exc)) from exc
    if constant:
        return None, value is True
    return interpolated, True


def _index(expression: str | None) -> tuple[str | None, str | None]:
    if expression is None:
        return None, None
    terms = expr.index_terms(expression)
    if not terms:
        return None, None
    path, literal = terms[0]
    return path, expr.index_value(literal)


def _timeout_job(pause_key: str, run_id: str, at: int) -> NewJob:
    return NewJob(
        run_id=run_id,
        kind=JobKind.PAUSE_TIMEOUT,
        run_at=at,
        key=f"timeout:{pause_key}",
        payload={"pause": pause_key},
    )


def wait_for_event(
    run_id: str, op: GeneratorOp, name: str | None, trigger: dict[str, Any], now: int
) -> PlannedPause:
    opts = op.opts or {}
    event_name = opts.get("event") or op.name
    if not isinstance(event_name, str) or not event_name:
        raise PauseError("WaitForEvent needs an event name")
    expression, possible = _compile_condition(opts.get("if"), trigger)
    expires = expiry(opts.get("timeout"), now)
    key = f"wait:{run_id}:{op.id}"
    path, value = _index(expression)
    pause = NewPause(
        key=key,
        run_id=run_id,
        kind=PauseKind.WAIT,
        created_at=now,
        step_id=op.id,
        # A condition that can never hold still waits, for the timeout: under no name.
        event_name=event_name if possible else None,
        expression=expression,
        index_path=path,
        index_value=value,
        expires_at=expires,
        data={"name": name},
    )
    return PlannedPause(pause, _timeout_job(key, run_id, expires))


def wait_for_signal(run_id: str, op: GeneratorOp, name: str | None, now: int) -> PlannedPause:
    opts = op.opts or {}
    signal = opts.get("signal")
    if not isinstance(signal, str) or not signal:
        raise PauseError("WaitForSignal needs a signal id")
    conflict = opts.get("conflict") or "fail"  # the reference's default
    if conflict not in ("fail", "replace"):
        raise PauseError(f"conflict must be 'fail' or 'replace', got {conflict!r}")
    expires = expiry(opts.get("timeout"), now)
    key = f"signal:{run_id}:{op.id}"
    pause = NewPause(
        key=key,
        run_id=run_id,
        kind=PauseKind.SIGNAL,
        created_at=now,
        step_id=op.id,
        signal=signal,
        steal_signal=conflict == "replace",
        expires_at=expires,
        data={"name": name, "conflict": conflict},
    )
    return PlannedPause(pause, _timeout_job(key, run_id, expires))


def invoke_pause(
    run_id: str, op: GeneratorOp, name: str | None, correlation_id: str, expires: int, now: int
) -> PlannedPause:
    """The parent's side of an invoke: resumed by the child's ``function.finished``."""
    key = f"invoke:{correlation_id}"
    # A JSON string is also a valid CEL string literal (same quotes and escapes).
    literal = json.dumps(correlation_id)
    pause = NewPause(
        key=key,
        run_id=run_id,
        kind=PauseKind.INVOKE,
        created_at=now,
        step_id=op.id,
        event_name=ev.FUNCTION_FINISHED,
        expression=f"async.data.correlation_id == {literal}",
        index_path="data.correlation_id",
        index_value=expr.index_value(correlation_id),
        expires_at=expires,
        data={"name": name},
    )
    return PlannedPause(pause, _timeout_job(key, run_id, expires))


def cancel_pauses(
    run_id: str, cancels: list[dict[str, Any]], trigger: dict[str, Any], now: int
) -> list[NewPause]:
    """The ``cancelOn`` pauses of a new run (an ``if`` that can never hold writes none)."""
    out = []
    for i, cancel in enumerate(cancels):
        event_name = cancel.get("event")
        if not isinstance(event_name, str) or not event_name:
            continue
        try:
            expression, possible = _compile_condition(cancel.get("if"), trigger)
            expires = expiry(cancel.get("timeout"), now, default=MAX_WAIT)
        except PauseError:
            continue  # validated at sync; an event that breaks interpolation cancels nothing
        if not possible:
            continue
        path, value = _index(expression)
        out.append(
            NewPause(
                key=f"cancel:{run_id}:{i}",
                run_id=run_id,
                kind=PauseKind.CANCEL,
                created_at=now,
                event_name=event_name,
                expression=expression,
                index_path=path,
                index_value=value,
                expires_at=expires,
            )
        )
    return out


def event_matches(pause: Pause, event: EventRecord) -> bool:
    if pause.expires_at is not None and pause.expires_at < event.received_at:
        return False
    if pause.expression is None:
        return True
    return bool(expr.matches(pause.expression, {"async": event.to_wire()}))


def resume(pause: Pause, memo: Any, now: int, *, timed_out: bool) -> RunChange:
    """Resolve a wait, signal or invoke pause with ``memo``; the run goes on by fan-in."""
    assert pause.step_id is not None
    name = (pause.data or {}).get("name")
    kind = HistoryKind.INVOKE_ENDED if pause.kind is PauseKind.INVOKE else HistoryKind.WAIT_ENDED
    entry = HistoryEntry(kind, now, pause.step_id, name, data={"timed_out": timed_out})
    return RunChange(
        run_id=pause.run_id,
        consume_pause=pause.key,
        settled=[Settled(pause.step_id, memo, (entry,))],
        continue_with=next_call(pause.run_id, now, pause.step_id),
    )


def memo_for_event(pause: Pause, event: EventRecord) -> Any:
    """What a matching event resolves a pause's step to."""
    if pause.kind is PauseKind.INVOKE:
        data = event.data
        if data.get("error") is not None:
            return {"error": data["error"]}
        return {"data": data.get("result")}
    return event.to_wire()  # waitForEvent: the event itself, not wrapped


def memo_for_timeout(pause: Pause) -> Any:
    if pause.kind is PauseKind.INVOKE:
        return {"error": dict(INVOKE_TIMEOUT_ERROR)}
    return None
