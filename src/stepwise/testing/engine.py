"""``TestEngine``: run a function in-process, in virtual time, with steps mocked and spied on."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeVar, Unpack

from ..errors import ConfigError
from ..protocol import events as ev
from ..sdk.event import Event, EventLike
from ..sdk.function import Function
from ..sdk.options import Duration, duration_to_delta
from ..sdk.triggers import TriggerCron, TriggerEvent
from ._run import RunDriver
from .mocks import NOT_SET, Arrival, Mocks
from .results import RunResult, Spies, StepNotReachedError, StepResult

T = TypeVar("T")


class ExecuteOptions(TypedDict, total=False):
    """What one execution may add: its events, mocks over the engine's, and what happens
    while it runs."""

    events: Sequence[EventLike]
    """A batch of triggering events (``ctx.events``); the first is ``ctx.event``."""
    steps: Mapping[str, Any]
    """Mocks by step ID, for steps of any kind."""
    invokes: Mapping[str | Function, Any]
    """Mocks of invoked functions' results, by function (or its ID)."""
    waits: Mapping[str, Any]
    """``wait_for_event`` answers by awaited event name: an event, ``None``/``TIMEOUT``."""
    fetch: Any
    """The answer to every ``step.fetch``, a callable, or a mapping of URL to answer."""
    ai: Any
    """The provider's response to every ``step.ai`` request, or a callable."""
    arrivals: Sequence[Arrival]
    """Events that reach the server while the run goes on (``wait_for_event``, ``cancel_on``)."""
    start_delay: Duration
    """How long the run waits to start (past ``timeouts.start``, it is cancelled)."""


class TestEngine:
    """Runs ``function`` through the SDK's execution core the way a server would, with no
    server and no HTTP.

    Mocks given here apply to every execution; those given to ``execute`` are added over
    them. ``functions`` are other functions an ``invoke`` may reach: they run in-process
    too. ``retry_interval`` fixes the virtual delay between attempts (else the server's
    backoff table). ``now`` is where virtual time starts (default: the real clock).
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        function: Function,
        *,
        steps: Mapping[str, Any] | None = None,
        invokes: Mapping[str | Function, Any] | None = None,
        waits: Mapping[str, Any] | None = None,
        fetch: Any = NOT_SET,
        ai: Any = NOT_SET,
        functions: Iterable[Function] = (),
        retry_interval: Duration | None = None,
        now: datetime | None = None,
    ) -> None:
        if not isinstance(function, Function):
            raise ConfigError(f"TestEngine needs a Function, not {function!r}")
        self.function = function
        self.mocks = _mocks(steps, invokes, waits, fetch, ai)
        self.functions = {f.id: f for f in (function, *functions)}
        self.retry_interval_s = (
            None
            if retry_interval is None
            else duration_to_delta(retry_interval, what="retry_interval").total_seconds()
        )
        self.now = now
        self.last_run: RunResult | None = None

    @property
    def steps(self) -> Spies:
        """Spies on the steps of the latest execution, by step ID."""
        return self.last_run.spies if self.last_run is not None else Spies()

    # ---- async -------------------------------------------------------------------------

    async def execute_async(
        self, event: EventLike | None = None, **options: Unpack[ExecuteOptions]
    ) -> RunResult:
        """Run the function to its end: completed, failed (after its retries) or cancelled.

        ``event`` triggers it; without one (or ``events``), an event named after its first
        trigger. See ``ExecuteOptions`` for the rest.
        """
        self.last_run = await self._driver(event, options, stop_at=None).run()
        return self.last_run

    async def execute_step_async(
        self, step_id: str, event: EventLike | None = None, **options: Unpack[ExecuteOptions]
    ) -> StepResult:
        """Run the function until step ``step_id`` has ended; its output, and the run so far.

        Raises ``StepNotReachedError`` if the run ends without reaching the step.
        """
        run = self.last_run = await self._driver(event, options, stop_at=step_id).run()
        for record in run.steps:
            if record.id == step_id:
                return StepResult(record, run)
        raise StepNotReachedError(
            f"the run ended ({run.status}) without reaching step {step_id!r}; "
            f"steps that ended: {run.step_ids}"
        )

    # ---- sync --------------------------------------------------------------------------

    def execute(
        self, event: EventLike | None = None, **options: Unpack[ExecuteOptions]
    ) -> RunResult:
        """``execute_async`` for code without an event loop (plain ``def`` tests)."""
        return _run_sync(self.execute_async(event, **options), "execute")

    def execute_step(
        self, step_id: str, event: EventLike | None = None, **options: Unpack[ExecuteOptions]
    ) -> StepResult:
        """``execute_step_async`` for code without an event loop."""
        return _run_sync(self.execute_step_async(step_id, event, **options), "execute_step")

    # ---- internals ---------------------------------------------------------------------

    def _driver(
        self, event: EventLike | None, options: ExecuteOptions, *, stop_at: str | None
    ) -> RunDriver:
        now = self.now or datetime.now(UTC)
        mocks = _mocks(
            options.get("steps"),
            options.get("invokes"),
            options.get("waits"),
            options.get("fetch", NOT_SET),
            options.get("ai", NOT_SET),
        )
        return RunDriver(
            function=self.function,
            mocks=self.mocks.merged(mocks),
            events=self._trigger_events(event, options.get("events")),
            functions=self.functions,
            created_at=int(now.timestamp() * 1000),
            retry_interval_s=self.retry_interval_s,
            start_delay=options.get("start_delay", 0),
            arrivals=options.get("arrivals", ()),
            stop_at=stop_at,
        )

    def _trigger_events(
        self, event: EventLike | None, events: Sequence[EventLike] | None
    ) -> list[dict[str, Any]]:
        if events is not None:
            batch = [_wire(e) for e in events]
            if not batch:
                raise ConfigError("events must not be empty")
            if event is not None and _wire(event) != batch[0]:
                raise ConfigError("event must be the first of events (or left out)")
            return batch
        if event is not None:
            return [_wire(event)]
        trigger = self.function.triggers[0]
        if isinstance(trigger, TriggerCron):
            return [{"name": ev.SCHEDULED_TIMER, "data": {"cron": trigger.cron}}]
        assert isinstance(trigger, TriggerEvent)
        return [{"name": trigger.event, "data": {}}]


def _mocks(
    steps: Mapping[str, Any] | None,
    invokes: Mapping[str | Function, Any] | None,
    waits: Mapping[str, Any] | None,
    fetch: Any,
    ai: Any,
) -> Mocks:
    return Mocks(
        steps=dict(steps or {}),
        invokes=dict(invokes or {}),  # type: ignore[arg-type]  # Functions become IDs
        waits=dict(waits or {}),
        fetch=fetch,
        ai=ai,
    )


def _wire(event: EventLike) -> dict[str, Any]:
    if isinstance(event, Event):
        return event.to_wire()
    if isinstance(event, Mapping) and isinstance(event.get("name"), str) and event["name"]:
        return dict(event)
    raise ConfigError(f"an event needs a name: {event!r}")


def _run_sync(coroutine: Coroutine[Any, Any, T], name: str) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise RuntimeError(
        f"TestEngine.{name}() runs its own event loop; in async code (an async test), "
        f"await TestEngine.{name}_async() instead"
    )
