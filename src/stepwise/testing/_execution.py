"""The SDK's ``Execution``, watched: which step tool was called with what, and step bodies
swapped for their mocks.

Nothing here changes how a call runs. ``TestExecution`` only wraps two seams of the real
``Execution``: step tools are reached through a recorder (so each new step knows the
arguments its tool got), and a run-type step's body goes through the engine's hook (which
counts it, and runs the mock instead when there is one). Retries, ``NonRetriableError``
and ``RetryAfterError`` are then decided by the SDK's own code, as in production.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from ..sdk.call import CallRequest
from ..sdk.client import Stepwise
from ..sdk.execution import CallResult, Execution, StepCall
from ..sdk.function import Function
from ..sdk.step import Step

StepBody = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a step tool: its name (``run``, ``sleep``, ``ai.infer``, ...) and the
    arguments it got after the step ID."""

    tool: str
    step_id: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


_tool_call_var: ContextVar[ToolCall | None] = ContextVar("stepwise_test_tool_call", default=None)


class _RecordingTools:
    """Stands in for ``Step``: every public coroutine method is a tool, called through here.

    Generic on purpose: a tool added to ``Step`` later (or a namespace of tools such as
    ``step.ai``) is recorded without a change here.
    """

    __slots__ = ("_prefix", "_tools")

    def __init__(self, tools: object, prefix: str = "") -> None:
        self._tools = tools
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._tools, name)
        if name.startswith("_"):
            return attr
        if inspect.iscoroutinefunction(attr):
            return _recorded(f"{self._prefix}{name}", attr)
        if _is_namespace(attr):
            return _RecordingTools(attr, prefix=f"{self._prefix}{name}.")
        return attr


def _is_namespace(value: object) -> bool:
    if callable(value) or isinstance(value, str | bytes | int | float | bool | type(None)):
        return False
    return any(
        inspect.iscoroutinefunction(getattr(type(value), n, None))
        for n in dir(type(value))
        if not n.startswith("_")
    )


def _recorded(tool: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        if args:
            step_id, rest, named = args[0], args[1:], kwargs
        else:
            step_id = kwargs.get("step_id")
            rest, named = (), {k: v for k, v in kwargs.items() if k != "step_id"}
        if not isinstance(step_id, str):
            return await method(*args, **kwargs)  # not a step tool (``parallel``)
        token = _tool_call_var.set(ToolCall(tool, step_id, tuple(rest), dict(named)))
        try:
            return await method(*args, **kwargs)
        finally:
            _tool_call_var.reset(token)

    return call


class ExecutionHooks(Protocol):
    """What the test engine does at the seams ``TestExecution`` opens."""

    def step_body(
        self, call: StepCall, body: StepBody, tool: ToolCall | None, attempt: int
    ) -> StepBody: ...


class TestExecution(Execution):
    """One call of the function, run by the SDK's own ``Execution``, with its seams watched."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        *,
        hooks: ExecutionHooks,
        client: Stepwise,
        function: Function,
        request: CallRequest,
        target_step: str | None,
    ) -> None:
        super().__init__(
            client=client,
            function=function,
            request=request,
            target_step=target_step,
        )
        self.hooks = hooks
        self.tool_calls: dict[str, ToolCall] = {}
        """The tool call behind each new step of this call, by hashed step ID."""
        self.function_error: Exception | None = None
        """What the handler raised, when the call ended in the function's error."""
        self.step_tools = cast("Step", _RecordingTools(self.step_tools))

    def begin(self, user_id: str) -> StepCall:
        call = super().begin(user_id)
        tool = _tool_call_var.get()
        if not call.memoized and tool is not None and tool.step_id == user_id:
            self.tool_calls[call.hashed_id] = tool
        return call

    async def run_or_plan(
        self,
        call: StepCall,
        body: StepBody,
        opts: dict[str, Any] | None = None,
        input: tuple[Any, ...] = (),
    ) -> Any:
        tool = self.tool_calls.get(call.hashed_id)
        hooked = self.hooks.step_body(call, body, tool, self.request.attempt)
        return await super().run_or_plan(call, hooked, opts, input)

    def _function_error(self, exc: BaseException) -> CallResult:
        # The wire form is all a server would see; a test wants the exception itself.
        if isinstance(exc, Exception):
            self.function_error = exc
        return super()._function_error(exc)
