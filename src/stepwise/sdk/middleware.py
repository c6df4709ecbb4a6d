"""Middleware: hooks around every function run, every step and every event sent.

A ``Middleware`` is registered on the client (``Stepwise(..., middleware=[...])``, for every
function and every send) or on one function (``create_function(..., middleware=[...])``).
The client's come first, then the function's; the built-in ``LoggerMiddleware`` is first
of all. Think of them as layers: the first registered is the outermost one, nearest the
server. Data coming in (a call's input, a send's result) passes them in registration
order; data going out (outputs, events being sent) in reverse order::

    server ─► transform_input      mw1 ─► mw2 ─► handler
    server ◄─ transform_output     mw1 ◄─ mw2 ◄─ handler
    server ◄─ transform_send_input mw1 ◄─ mw2 ◄─ client.send(...)

One call request runs, for the whole stack: ``transform_input``, ``before_memoization``;
then, once the memoized steps have replayed, ``after_memoization`` and
``before_execution``; after the new code ran, ``after_execution``; ``transform_output``
once for each op and for the function's own result; ``finished`` if the run ended with this
request; ``before_response`` last. ``wrap_step`` wraps each step body this request runs.
Every hook runs exactly once per request (and step); memoized steps replaying do not call
``wrap_step`` again unless the middleware sets ``wrap_memoized_steps``.

Hooks may be ``def`` or ``async def``; plain ones run on the event loop, so keep them
short. Per-request state belongs in ``run.state`` (keyed by the middleware), since one
middleware instance serves many requests at once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..errors import ConfigError
from ..protocol import Opcode

if TYPE_CHECKING:
    from .client import Stepwise
    from .event import Event
    from .function import Function

StepKind = Literal[
    "run",
    "send_event",
    "sleep",
    "wait_for_event",
    "invoke",
    "fetch",
    "wait_for_signal",
    "ai",
    "other",
]

_KIND_OF_OPCODE: dict[Opcode, StepKind] = {
    Opcode.SLEEP: "sleep",
    Opcode.WAIT_FOR_EVENT: "wait_for_event",
    Opcode.INVOKE_FUNCTION: "invoke",
    Opcode.GATEWAY: "fetch",
    Opcode.WAIT_FOR_SIGNAL: "wait_for_signal",
    Opcode.AI_GATEWAY: "ai",
}
_KIND_OF_RUN_TYPE: dict[Any, StepKind] = {"step.sendEvent": "send_event", "step.ai.wrap": "ai"}


def kind_of(opcode: Opcode, opts: Mapping[str, Any] | None) -> StepKind:
    """The step tool behind an op (a run-type op's ``opts.type`` tells ``send_event`` and
    ``ai.wrap`` from ``run``)."""
    if opcode in (Opcode.STEP_RUN, Opcode.STEP_PLANNED, Opcode.STEP_ERROR, Opcode.STEP_FAILED):
        return _KIND_OF_RUN_TYPE.get((opts or {}).get("type"), "run")
    return _KIND_OF_OPCODE.get(opcode, "other")


@dataclass(frozen=True, slots=True)
class StepInfo:
    """One step as middleware sees it."""

    id: str
    """The ID user code gave the step."""
    hashed_id: str
    """The ID on the wire (a hash of ``id`` and its index)."""
    index: int
    """How many earlier steps in this run share ``id``."""
    name: str
    kind: StepKind
    input: tuple[Any, ...] = ()
    """What the step was called with: ``step.run``'s arguments, the events of a
    ``send_event``, the data of an ``invoke``."""
    memoized: bool = False
    """True when the step's result comes from a memo (``wrap_memoized_steps`` only)."""


@dataclass(slots=True)
class StepMemo:
    """A memoized step result as the server sent it: ``data``, or ``error`` for a failure."""

    data: Any = None
    error: dict[str, Any] | None = None


@dataclass(eq=False, slots=True)
class FunctionRun:
    """One call request of one run: what every run hook receives.

    ``event`` and ``events`` are those the handler sees (after ``transform_input``).
    """

    client: Stepwise
    function: Function
    run_id: str
    attempt: int
    max_attempts: int
    event: Event
    events: list[Event]
    replaying: bool = True
    """True until the memoized steps have replayed (``after_memoization``)."""
    state: dict[Any, Any] = field(default_factory=dict)
    """Per-request scratch space for middleware; key it by the middleware instance."""


@dataclass(eq=False, slots=True)
class RunInput:
    """What ``transform_input`` may change before the handler runs."""

    event: Event
    events: list[Event]
    steps: dict[str, StepMemo]
    """Memoized results by hashed step ID."""
    logger: logging.Logger | logging.LoggerAdapter[Any]
    """``ctx.logger``."""
    deps: dict[str, Any] = field(default_factory=dict)
    """Becomes ``ctx.deps``: add values here to inject them into handlers."""


_NOTHING: Any = object()


@dataclass(eq=False, slots=True)
class Output:
    """A step's or the function's result on its way out; change ``data`` or ``error``.

    ``step`` is ``None`` for the function's own result. For a reported op that carries
    no result yet (a planned step, a sleep, an invoke) ``has_data`` is false and ``opts``
    holds the op's options, which may be changed too (an invoke's ``payload``, say).
    """

    data: Any = None
    error: BaseException | None = None
    step: StepInfo | None = None
    opcode: Opcode | None = None
    opts: dict[str, Any] | None = None
    has_data: bool = True


@dataclass(eq=False, slots=True)
class SendInput:
    """Events about to be sent (wire dicts: ``name``, ``data``, ``id``, ``ts``...)."""

    client: Stepwise
    events: list[dict[str, Any]]


@dataclass(eq=False, slots=True)
class SendOutput:
    """What the event API answered for ``events``: one ID each, in order."""

    client: Stepwise
    events: list[dict[str, Any]]
    ids: list[str]


CallNext = Callable[[], Awaitable[Any]]


class Middleware:
    """Base class: override the hooks you need (``def`` or ``async def``)."""

    name: ClassVar[str] = ""
    wrap_memoized_steps: ClassVar[bool] = False
    """Also wrap memoized steps as they replay (their ``call_next`` returns the memo)."""

    def on_register(self, client: Stepwise, function: Function | None) -> None:
        """When registered: on a client (``function`` is ``None``) or on one function."""

    def transform_input(self, run: FunctionRun, input: RunInput) -> Any:
        """Before the handler: change the events, the memoized steps, the logger or deps."""

    def before_memoization(self, run: FunctionRun) -> Any:
        """Before memoized steps replay."""

    def after_memoization(self, run: FunctionRun) -> Any:
        """Once every memoized step has replayed (at once when there were none)."""

    def before_execution(self, run: FunctionRun) -> Any:
        """Right before code runs for the first time in this run."""

    def after_execution(self, run: FunctionRun) -> Any:
        """After the new code of this request ran (the handler settled or a step ran)."""

    def transform_output(self, run: FunctionRun, output: Output) -> Any:
        """Each result leaving the app: a step's output or error, an op, the function's."""

    def finished(self, run: FunctionRun, output: Output) -> Any:
        """The run ended with this request: the function returned or failed for good."""

    def before_response(self, run: FunctionRun) -> Any:
        """Last, before the answer goes back to the server (always called)."""

    async def wrap_step(self, run: FunctionRun, step: StepInfo, call_next: CallNext) -> Any:
        """Around each step body run in this request: return its output or raise its error."""
        return await call_next()

    def transform_send_input(self, send: SendInput) -> Any:
        """Before events are sent: change ``send.events`` (or raise to refuse them)."""

    def transform_send_output(self, send: SendOutput) -> Any:
        """After events were sent: change ``send.ids`` if need be."""


class Deps:
    """``ctx.deps``: the values middleware injected, as attributes.

    Annotate the handler's context (``Context[MyDeps]``) so that mypy checks each access.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        values: dict[str, Any] = object.__getattribute__(self, "_values")
        try:
            return values[name]
        except KeyError:
            known = ", ".join(sorted(values)) or "none"
            raise AttributeError(
                f"no dependency {name!r} was injected (injected: {known}); "
                "register a middleware that adds it in transform_input"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ctx.deps is read-only; inject values from middleware")

    def __contains__(self, name: object) -> bool:
        return name in object.__getattribute__(self, "_values")

    def __repr__(self) -> str:
        return f"Deps({', '.join(sorted(object.__getattribute__(self, '_values')))})"


class Dependencies(Middleware):
    """Injects fixed values into every run's ``ctx.deps``: ``Dependencies(db=pool)``."""

    name = "dependencies"

    def __init__(self, **values: Any) -> None:
        self.values = values

    def transform_input(self, run: FunctionRun, input: RunInput) -> None:
        input.deps.update(self.values)


def _overrides(middleware: Middleware, hook: str) -> bool:
    return getattr(type(middleware), hook) is not getattr(Middleware, hook)


async def _settle(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def check_middleware(
    middleware: Iterable[Middleware] | None, *, what: str
) -> tuple[Middleware, ...]:
    items = tuple(middleware or ())
    for item in items:
        if not isinstance(item, Middleware):
            raise ConfigError(f"{what} middleware must be Middleware instances, not {item!r}")
    return items


def register_all(
    middleware: Sequence[Middleware], client: Stepwise, function: Function | None
) -> None:
    for item in middleware:
        if inspect.iscoroutinefunction(item.on_register):
            raise ConfigError(f"{type(item).__name__}.on_register must not be async")
        item.on_register(client, function)


class MiddlewareStack:
    """Calls one hook on every middleware, in the order the hook's direction asks."""

    __slots__ = ("_by_hook", "_items")

    def __init__(self, items: Sequence[Middleware]) -> None:
        self._items = tuple(items)
        # Which middleware override each hook, found once: most override few hooks.
        self._by_hook: dict[str, list[Middleware]] = {}

    def __bool__(self) -> bool:
        return bool(self._items)

    def has(self, hook: str) -> bool:
        """Whether some middleware overrides ``hook``."""
        return bool(self._with(hook))

    def _with(self, hook: str, *, reverse: bool = False) -> list[Middleware]:
        chosen = self._by_hook.get(hook)
        if chosen is None:
            chosen = self._by_hook[hook] = [m for m in self._items if _overrides(m, hook)]
        return chosen[::-1] if reverse else chosen

    async def call(self, hook: str, *args: Any, reverse: bool = False) -> None:
        for item in self._with(hook, reverse=reverse):
            await _settle(getattr(item, hook)(*args))

    def call_sync(self, hook: str, *args: Any, reverse: bool = False) -> None:
        """For plain-function callers (``send_sync``): an ``async def`` hook runs in a fresh loop."""
        for item in self._with(hook, reverse=reverse):
            result = getattr(item, hook)(*args)
            if inspect.isawaitable(result):
                asyncio.run(_settle(result))

    def wraps_memoized(self) -> bool:
        return any(m.wrap_memoized_steps for m in self._with("wrap_step"))

    async def wrap_step(
        self, run: FunctionRun, step: StepInfo, body: CallNext, *, memoized: bool = False
    ) -> Any:
        """``body`` inside each middleware's ``wrap_step``, the first registered outermost."""
        chain = self._with("wrap_step")
        if memoized:
            chain = [m for m in chain if m.wrap_memoized_steps]
        call_next = body
        for item in reversed(chain):
            call_next = _bind_wrap(item, run, step, call_next)
        return await call_next()


def _bind_wrap(item: Middleware, run: FunctionRun, step: StepInfo, inner: CallNext) -> CallNext:
    async def call() -> Any:
        return await _settle(item.wrap_step(run, step, inner))

    return call
