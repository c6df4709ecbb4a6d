"""``ctx.step.ai``: ``infer`` (the server calls the model) and ``wrap`` (the app does).

``infer`` reports an ``AIGateway`` op: the server makes the provider's request, so no
process of the app waits while the model answers, and the answer is retried and stored
like any step's result. ``wrap`` is ``step.run`` for an AI call the app makes itself,
marked ``step.ai.wrap`` with its arguments, so the run's history shows what went in.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import pydantic

from ..ai._model import Model, RequestT, ResponseT
from ..errors import InferenceError
from ..protocol import Opcode, dumps

if TYPE_CHECKING:
    from .execution import Execution, StepCall
    from .step import Step, SyncStep

P = ParamSpec("P")
T = TypeVar("T")


def to_json(value: Any) -> Any:
    """``value`` as JSON data: a pydantic model (as the OpenAI and Anthropic SDKs return)
    becomes its JSON form; containers are converted through."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def _wrap_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """What the history shows as the call's input: the arguments, keyword ones last as one
    object; anything that is not JSON as its ``repr``."""
    given = [*args, kwargs] if kwargs else list(args)
    shown = []
    for value in given:
        converted = to_json(value)
        try:
            dumps(converted)
        except TypeError:
            converted = repr(value)
        shown.append(converted)
    return shown


async def _call_for_json(fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    from .step import _call_user_fn  # step.py imports this module: import when first used

    return to_json(await _call_user_fn(fn, args, kwargs))


def _raise_failure(memo: Any) -> None:
    """A failed ``infer`` step raises ``InferenceError`` with the provider's status and body."""
    if not isinstance(memo, dict) or set(memo) - {"data", "error"}:
        return
    error = memo.get("error")
    if not isinstance(error, dict):
        return
    status = error.get("status")
    stack = error.get("stack")
    raise InferenceError(
        str(error.get("message", "")),
        name=str(error.get("name") or "AIGatewayError"),
        stack=stack if isinstance(stack, str) else None,
        status=status if isinstance(status, int) else None,
        body=error.get("data"),
    )


class AI:
    """``ctx.step.ai`` of an ``async def`` handler."""

    __slots__ = ("_step",)

    def __init__(self, step: Step) -> None:
        self._step = step

    @property
    def _execution(self) -> Execution:
        return self._step._execution

    async def infer(
        self,
        step_id: str,
        *,
        model: Model[RequestT, ResponseT],
        body: RequestT | Mapping[str, Any],
    ) -> ResponseT:
        """Have the server call ``model`` with ``body``; returns the provider's typed answer.

        The body is checked against the model's request type before anything is sent
        (``ConfigError`` if it is wrong). A provider's error answer (after retries for a
        429 or 5xx) or no answer at all raises ``InferenceError`` here.
        """
        if not isinstance(model, Model):
            raise TypeError("step.ai.infer needs a model from stepwise.ai (openai(...), ...)")
        execution = self._execution
        call: StepCall = execution.begin(step_id)
        if call.memoized:
            _raise_failure(call.memo)
            return model.parse_response(await execution.replayed(call, "ai"))
        opts = model.gateway_options(body)
        # Like the JS SDK, an AIGateway op carries no ``name``.
        await execution.plan(call, call.op(Opcode.AI_GATEWAY, name=None, opts=opts))

    async def wrap(
        self,
        step_id: str,
        fn: Callable[P, Awaitable[Any]] | Callable[P, Any],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Any:
        """Call ``fn(*args, **kwargs)`` once, durably, as a step marked ``step.ai.wrap``.

        Returns the JSON form of its result, on the first run and every replay alike: a
        pydantic model (an OpenAI or Anthropic SDK response) comes back as a dict.
        """
        execution = self._execution
        call = execution.begin(step_id)
        inputs = (*args, kwargs) if kwargs else tuple(args)
        if call.memoized:
            return await execution.replayed(call, "ai", inputs)
        opts = {"type": "step.ai.wrap", "input": _wrap_input(args, kwargs)}
        body = functools.partial(_call_for_json, fn, args, kwargs)
        return await execution.run_or_plan(call, body, opts, input=inputs)


class SyncAI:
    """``ctx.step.ai`` of a ``def`` handler: the same tools, as plain calls."""

    __slots__ = ("_ai", "_sync")

    def __init__(self, sync_step: SyncStep, ai: AI) -> None:
        self._sync = sync_step
        self._ai = ai

    def infer(
        self,
        step_id: str,
        *,
        model: Model[RequestT, ResponseT],
        body: RequestT | Mapping[str, Any],
    ) -> ResponseT:
        return self._sync._wait(lambda: self._ai.infer(step_id, model=model, body=body))

    def wrap(
        self,
        step_id: str,
        fn: Callable[P, Awaitable[Any]] | Callable[P, Any],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Any:
        """Call ``fn`` once, durably (a plain ``def`` fn in a worker thread)."""
        return self._sync._wait(lambda: self._ai.wrap(step_id, fn, *args, **kwargs))


__all__ = ["AI", "SyncAI", "to_json"]
