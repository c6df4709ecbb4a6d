"""Step tools: ``ctx.step.run``, ``sleep``, ``sleep_until``, ``send_event``.

The decisions (memo or new, run now or plan, success or failure) all live in
``Execution``. ``Step`` (for ``async def`` handlers) and ``SyncStep`` (for ``def``
handlers) differ only in how they call the user's callable and the event API.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

import anyio.to_thread

from ..protocol import Opcode, parse_duration, parse_timestamp, to_iso
from .event import EventLike

if TYPE_CHECKING:
    from .execution import Execution

P = ParamSpec("P")
T = TypeVar("T")

_SEND_EVENT_OPTS = {"type": "step.sendEvent"}


def _deadline_after(duration: str | int | float | timedelta) -> datetime:
    if isinstance(duration, str):
        delta = parse_duration(duration)
    elif isinstance(duration, timedelta):
        delta = duration
    else:
        delta = timedelta(seconds=duration)
    return datetime.now(UTC) + delta


def _as_utc(until: datetime | str) -> datetime:
    if isinstance(until, str):
        return parse_timestamp(until)
    return until if until.tzinfo else until.replace(tzinfo=UTC)


async def _await_value(value: Awaitable[T]) -> T:
    return await value


class _StepTools:
    __slots__ = ("_execution",)

    def __init__(self, execution: Execution) -> None:
        self._execution = execution

    def _sleep_until(self, step_id: str, until: datetime) -> None:
        call = self._execution.begin(step_id)
        if call.memoized:
            self._execution.replay(call)
            return
        # Like the official Python SDK: the absolute wake-up time, not a duration.
        self._execution.report(call, call.op(Opcode.SLEEP, name=to_iso(until)))


class Step(_StepTools):
    """Step tools of an ``async def`` handler."""

    __slots__ = ()

    @overload
    async def run(
        self, step_id: str, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @overload
    async def run(
        self, step_id: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    async def run(
        self, step_id: str, fn: Callable[P, Any], *args: P.args, **kwargs: P.kwargs
    ) -> Any:
        """Run ``fn`` once, durably; later replays return its (JSON) result.

        A plain ``def`` fn runs in a worker thread so it cannot stall the event loop.
        """
        call = self._execution.begin(step_id)
        if call.memoized:
            return self._execution.replay(call)
        self._execution.ensure_executing(call)
        try:
            if inspect.iscoroutinefunction(fn):
                output = await fn(*args, **kwargs)
            else:
                output = await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
                if inspect.isawaitable(output):
                    output = await output
        except Exception as exc:
            self._execution.fail(call, exc)
        self._execution.succeed(call, output)

    async def sleep(self, step_id: str, duration: str | int | float | timedelta) -> None:
        """Pause the run for ``duration`` ("1h30m", seconds, or a timedelta)."""
        self._sleep_until(step_id, _deadline_after(duration))

    async def sleep_until(self, step_id: str, until: datetime | str) -> None:
        """Pause the run until ``until`` (naive datetimes are UTC; strings are ISO 8601)."""
        self._sleep_until(step_id, _as_utc(until))

    async def send_event(self, step_id: str, events: EventLike | Sequence[EventLike]) -> list[str]:
        """Send events as a step, so a replay does not send them again. Returns event IDs."""
        call = self._execution.begin(step_id)
        if call.memoized:
            return _ids_of(self._execution.replay(call))
        self._execution.ensure_executing(call, _SEND_EVENT_OPTS)
        try:
            ids = await self._execution.client.send(events)
        except Exception as exc:
            self._execution.fail(call, exc, _SEND_EVENT_OPTS)
        self._execution.succeed(call, {"ids": ids}, _SEND_EVENT_OPTS)


class SyncStep(_StepTools):
    """Step tools of a ``def`` handler (which runs in a worker thread)."""

    __slots__ = ()

    @overload
    def run(
        self, step_id: str, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @overload
    def run(self, step_id: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    def run(self, step_id: str, fn: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run ``fn`` once, durably; an ``async def`` fn runs to completion in a fresh loop."""
        call = self._execution.begin(step_id)
        if call.memoized:
            return self._execution.replay(call)
        self._execution.ensure_executing(call)
        try:
            output = fn(*args, **kwargs)
            if inspect.isawaitable(output):
                output = asyncio.run(_await_value(output))
        except Exception as exc:
            self._execution.fail(call, exc)
        self._execution.succeed(call, output)

    def sleep(self, step_id: str, duration: str | int | float | timedelta) -> None:
        self._sleep_until(step_id, _deadline_after(duration))

    def sleep_until(self, step_id: str, until: datetime | str) -> None:
        self._sleep_until(step_id, _as_utc(until))

    def send_event(self, step_id: str, events: EventLike | Sequence[EventLike]) -> list[str]:
        call = self._execution.begin(step_id)
        if call.memoized:
            return _ids_of(self._execution.replay(call))
        self._execution.ensure_executing(call, _SEND_EVENT_OPTS)
        try:
            ids = self._execution.client.send_sync(events)
        except Exception as exc:
            self._execution.fail(call, exc, _SEND_EVENT_OPTS)
        self._execution.succeed(call, {"ids": ids}, _SEND_EVENT_OPTS)


def _ids_of(memo: Any) -> list[str]:
    if isinstance(memo, dict) and isinstance(memo.get("ids"), list):
        return [str(i) for i in memo["ids"]]
    return []
