"""Step tools: ``ctx.step.run``, ``sleep``, ``wait_for_event``, ``invoke``, ``fetch``,
``ai.infer``, ``ai.wrap`` (in ``sdk/ai.py``), ...

``Step`` is the one implementation (the tools of ``async def`` handlers). ``SyncStep``,
for ``def`` handlers running in a worker thread, calls the same coroutines on the event
loop and waits for them. The decisions (memo or new, run now or plan, success or
failure) live in ``Execution``; each tool here only validates its arguments, shapes its
op and reads its memo.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

import anyio
import anyio.from_thread
import anyio.to_thread

from ..errors import ConfigError
from ..protocol import Opcode, parse_duration, parse_timestamp, to_iso
from ..protocol.sessions import PROPAGATED
from .ai import AI, SyncAI
from .current import Branch, BranchStopped, Outcome, ParallelMode, branch_var
from .event import Event, EventLike, event_data, events_for_sending
from .function import Function
from .gateway import FetchResponse, request_options
from .options import Duration, condition, duration_to_wire

if TYPE_CHECKING:
    from .execution import Execution

P = ParamSpec("P")
T = TypeVar("T")

_SEND_EVENT_OPTS = {"type": "step.sendEvent"}
# Step bodies of ``def`` handlers run in threads while the handler's thread waits for
# them; separate capacity keeps busy handlers from starving their own step bodies.
_STEP_THREADS = 40
_step_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _step_limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _step_limiters.get(loop)
    if limiter is None:
        limiter = _step_limiters[loop] = anyio.CapacityLimiter(_STEP_THREADS)
    return limiter


async def _call_user_fn(fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Await an ``async def`` fn; run a plain one in a thread so it cannot stall the loop."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    output = await anyio.to_thread.run_sync(
        functools.partial(fn, *args, **kwargs), limiter=_step_limiter()
    )
    if inspect.isawaitable(output):
        output = await output
    return output


def _deadline_after(duration: Duration) -> datetime:
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


def _ids_of(memo: Any) -> list[str]:
    if isinstance(memo, dict) and isinstance(memo.get("ids"), list):
        return [str(i) for i in memo["ids"]]
    return []


def _check_mode(mode: str) -> None:
    if mode not in ("wait", "race"):
        raise ConfigError(f"parallel mode must be 'wait' or 'race', not {mode!r}")


class Step:
    """Step tools of an ``async def`` handler."""

    __slots__ = ("_execution", "ai")

    def __init__(self, execution: Execution) -> None:
        self._execution = execution
        self.ai = AI(self)
        """``infer`` (the server calls a model) and ``wrap`` (a model call made here)."""

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
        execution = self._execution
        call = execution.begin(step_id)
        inputs = (*args, kwargs) if kwargs else tuple(args)
        if call.memoized:
            return await execution.replayed(call, "run", inputs)
        body = functools.partial(_call_user_fn, fn, args, kwargs)
        return await execution.run_or_plan(call, body, input=inputs)

    async def sleep(self, step_id: str, duration: Duration) -> None:
        """Pause the run for ``duration`` ("1h30m", seconds, or a timedelta)."""
        await self._sleep_until(step_id, _deadline_after(duration))

    async def sleep_until(self, step_id: str, until: datetime | str) -> None:
        """Pause the run until ``until`` (naive datetimes are UTC; strings are ISO 8601)."""
        await self._sleep_until(step_id, _as_utc(until))

    async def _sleep_until(self, step_id: str, until: datetime) -> None:
        execution = self._execution
        call = execution.begin(step_id)
        if call.memoized:
            await execution.replayed(call, "sleep")
            return
        # Like the official Python SDK: the absolute wake-up time, not a duration.
        await execution.plan(call, call.op(Opcode.SLEEP, name=to_iso(until)))

    async def send_event(self, step_id: str, events: EventLike | Sequence[EventLike]) -> list[str]:
        """Send events as a step, so a replay does not send them again. Returns event IDs."""
        execution = self._execution
        call = execution.begin(step_id)
        if call.memoized:
            return _ids_of(await execution.replayed(call, "send_event", (events,)))

        async def send() -> dict[str, list[str]]:
            # The events inherit the run's sessions (their own ``meta.sessions`` win).
            stamped = events_for_sending(events, propagate=execution.sessions, replace=True)
            return {"ids": await execution.client.send(stamped)}

        return _ids_of(await execution.run_or_plan(call, send, _SEND_EVENT_OPTS, input=(events,)))

    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: Duration,  # noqa: ASYNC109 - how long the run waits, not an I/O deadline
        if_: str | None = None,
        match: str | None = None,
    ) -> Event | None:
        """Wait for an ``event`` (matching ``if_`` or ``match``); ``None`` after ``timeout``.

        ``match="data.id"`` means "the same ``data.id`` as the triggering event". In ``if_``,
        ``event`` is the triggering event and ``async`` the awaited one.
        """
        if not isinstance(event, str) or not event:
            raise ConfigError("wait_for_event needs an event name")
        opts: dict[str, Any] = {"timeout": duration_to_wire(timeout, what="wait_for_event timeout")}
        expression = condition(if_, match, what="wait_for_event")
        if expression is not None:
            opts["if"] = expression
        execution = self._execution
        call = execution.begin(step_id)
        if call.memoized:
            memo = await execution.replayed(call, "wait_for_event")
            return Event.from_wire(memo) if isinstance(memo, dict) else None
        await execution.plan(call, call.op(Opcode.WAIT_FOR_EVENT, name=event, opts=opts))

    async def invoke(
        self,
        step_id: str,
        *,
        function: Function | str,
        data: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,  # noqa: ASYNC109 - durable, not an I/O deadline
        meta: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run another function with ``data`` as its event data and return its result.

        ``function`` is a ``Function`` or a composite ID (``"<app_id>-<fn_id>"``). If the
        invoked run fails or ``timeout`` passes, this raises ``StepError``. ``meta``:
        ``{"sessions": {...}}`` of the invoked run's event, besides this run's sessions,
        which it inherits.
        """
        function_id = function.id if isinstance(function, Function) else function
        if not isinstance(function_id, str) or not function_id:
            raise ConfigError("invoke needs a Function or a composite function ID")
        payload = event_data(data, what="invoke")
        execution = self._execution
        invoked: dict[str, Any] = {"data": payload}
        if meta is not None:
            if not isinstance(meta, Mapping):
                raise ConfigError("invoke meta must be a dict")
            invoked["meta"] = dict(meta)
        if execution.sessions:
            # The invoked run inherits this run's sessions (``meta.sessions`` wins).
            invoked["meta"] = {**invoked.get("meta", {}), PROPAGATED: dict(execution.sessions)}
        opts: dict[str, Any] = {"function_id": function_id, "payload": invoked}
        if timeout is not None:
            opts["timeout"] = duration_to_wire(timeout, what="invoke timeout")
        call = execution.begin(step_id)
        if call.memoized:
            return await execution.replayed(call, "invoke", (function_id, payload))
        # Like the JS SDK, InvokeFunction and Gateway ops carry no ``name``.
        op = call.op(Opcode.INVOKE_FUNCTION, name=None, opts=opts)
        await execution.plan(call, op, input=(function_id, payload))

    async def fetch(
        self,
        step_id: str,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: str | bytes | None = None,
    ) -> FetchResponse:
        """Have the server make an HTTP request; the response is memoized like a step's.

        Any HTTP status is a result; only a request that cannot be made raises ``StepError``.
        """
        opts = request_options(url, method, headers, body)
        execution = self._execution
        call = execution.begin(step_id)
        if call.memoized:
            return FetchResponse.from_memo(await execution.replayed(call, "fetch"))
        await execution.plan(call, call.op(Opcode.GATEWAY, name=None, opts=opts))

    async def wait_for_signal(
        self,
        step_id: str,
        *,
        signal: str,
        timeout: Duration,  # noqa: ASYNC109 - how long the run waits, not an I/O deadline
        on_conflict: Literal["replace", "fail"] = "replace",
    ) -> dict[str, Any] | None:
        """Wait until ``client.send_signal(signal, data)``; ``None`` after ``timeout``.

        Returns ``{"signal": ..., "data": ...}``. ``on_conflict`` says what happens when
        another run already waits for the same signal: take it over, or fail this step.
        """
        if not isinstance(signal, str) or not signal:
            raise ConfigError("wait_for_signal needs a signal name")
        if on_conflict not in ("replace", "fail"):
            raise ConfigError("on_conflict must be 'replace' or 'fail'")
        opts = {
            "signal": signal,
            "timeout": duration_to_wire(timeout, what="wait_for_signal timeout"),
            "conflict": on_conflict,
        }
        execution = self._execution
        call = execution.begin(step_id)
        if call.memoized:
            memo = await execution.replayed(call, "wait_for_signal")
            return dict(memo) if isinstance(memo, dict) else None
        await execution.plan(call, call.op(Opcode.WAIT_FOR_SIGNAL, name=signal, opts=opts))

    @overload
    async def parallel(
        self, branches: Sequence[Callable[[], Awaitable[T]]], *, mode: Literal["wait"] = "wait"
    ) -> list[T]: ...

    @overload
    async def parallel(
        self, branches: Sequence[Callable[[], Awaitable[T]]], *, mode: Literal["race"]
    ) -> T: ...

    async def parallel(
        self, branches: Sequence[Callable[[], Awaitable[Any]]], *, mode: ParallelMode = "wait"
    ) -> Any:
        """Run branches concurrently; their new steps are reported together.

        ``wait``: a list of every branch's result, in order. ``race``: the result of the
        branch that completed first; the others are abandoned.
        """
        _check_mode(mode)
        if not branches:
            raise ConfigError("parallel needs at least one branch")
        if mode == "race":
            return await self._execution.race(branches)
        return list(await asyncio.gather(*(branch() for branch in branches)))


class SyncStep:
    """Step tools of a ``def`` handler: each call runs ``Step``'s coroutine and waits for it."""

    __slots__ = ("_step", "ai")

    def __init__(self, step: Step) -> None:
        self._step = step
        self.ai = SyncAI(self, step.ai)

    def _wait(self, coroutine_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        # The token, so that threads the handler starts itself may call step tools too.
        return anyio.from_thread.run(coroutine_fn, token=self._step._execution.loop_token)

    @overload
    def run(
        self, step_id: str, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @overload
    def run(self, step_id: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    def run(self, step_id: str, fn: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run ``fn`` once, durably (in a worker thread; an ``async def`` fn on the event loop)."""
        return self._wait(lambda: self._step.run(step_id, fn, *args, **kwargs))

    def sleep(self, step_id: str, duration: Duration) -> None:
        self._wait(lambda: self._step.sleep(step_id, duration))

    def sleep_until(self, step_id: str, until: datetime | str) -> None:
        self._wait(lambda: self._step.sleep_until(step_id, until))

    def send_event(self, step_id: str, events: EventLike | Sequence[EventLike]) -> list[str]:
        return self._wait(lambda: self._step.send_event(step_id, events))

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        timeout: Duration,
        if_: str | None = None,
        match: str | None = None,
    ) -> Event | None:
        return self._wait(
            lambda: self._step.wait_for_event(
                step_id, event=event, timeout=timeout, if_=if_, match=match
            )
        )

    def invoke(
        self,
        step_id: str,
        *,
        function: Function | str,
        data: Mapping[str, Any] | None = None,
        timeout: Duration | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Any:
        return self._wait(
            lambda: self._step.invoke(
                step_id, function=function, data=data, timeout=timeout, meta=meta
            )
        )

    def fetch(
        self,
        step_id: str,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: str | bytes | None = None,
    ) -> FetchResponse:
        return self._wait(
            lambda: self._step.fetch(step_id, url, method=method, headers=headers, body=body)
        )

    def wait_for_signal(
        self,
        step_id: str,
        *,
        signal: str,
        timeout: Duration,
        on_conflict: Literal["replace", "fail"] = "replace",
    ) -> dict[str, Any] | None:
        return self._wait(
            lambda: self._step.wait_for_signal(
                step_id, signal=signal, timeout=timeout, on_conflict=on_conflict
            )
        )

    @overload
    def parallel(
        self, branches: Sequence[Callable[[], T]], *, mode: Literal["wait"] = "wait"
    ) -> list[T]: ...

    @overload
    def parallel(self, branches: Sequence[Callable[[], T]], *, mode: Literal["race"]) -> T: ...

    def parallel(
        self, branches: Sequence[Callable[[], Any]], *, mode: ParallelMode = "wait"
    ) -> Any:
        """Run branches one after another, each up to its first new step, then report them all.

        Same results as ``Step.parallel``: a list (``wait``) or the first to complete (``race``).
        """
        _check_mode(mode)
        if not branches:
            raise ConfigError("parallel needs at least one branch")
        parent = branch_var.get()
        finished: list[tuple[Branch, Outcome]] = []
        stopped: list[Branch] = []
        for branch in branches:
            state = Branch(mode=mode, parent=parent, sequential=True)
            token = branch_var.set(state)
            try:
                finished.append((state, Outcome(value=branch())))
            except BranchStopped:
                stopped.append(state)
            except Exception as exc:
                finished.append((state, Outcome(error=exc)))
            finally:
                branch_var.reset(token)
        return self._wait(lambda: self._step._execution.conclude(mode, finished, stopped))
