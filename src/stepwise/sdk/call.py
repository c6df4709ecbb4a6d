"""The body of a call request (POST to the serve endpoint), parsed leniently.

Servers differ in what they send (our server, the Go dev server, Cloud): nulls where
objects are expected, floats for integers, ``use_api`` at the top level or under ``ctx``.
Everything is defaulted so that any of them can drive this SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from .event import Event


def _none_to(default: Any) -> BeforeValidator:
    return BeforeValidator(lambda v: default() if v is None else v)


class _Stack(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stack: Annotated[list[Any], _none_to(list)] = []


class _CallContext(BaseModel):
    model_config = ConfigDict(extra="ignore")

    run_id: Annotated[str, _none_to(str)] = ""
    fn_id: str | None = None
    attempt: Annotated[int, _none_to(int)] = 0
    max_attempts: int | None = None
    disable_immediate_execution: Annotated[bool, _none_to(bool)] = False
    use_api: Annotated[bool, _none_to(bool)] = False
    stack: Annotated[_Stack, _none_to(dict)] = _Stack()


class _CallBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: Annotated[dict[str, Any], _none_to(dict)] = {}
    events: Annotated[list[dict[str, Any]], _none_to(list)] = []
    steps: Annotated[dict[str, Any], _none_to(dict)] = {}
    ctx: Annotated[_CallContext, _none_to(dict)] = _CallContext()
    defers: Annotated[dict[str, Any], _none_to(dict)] = {}
    version: int | None = None
    use_api: Annotated[bool, _none_to(bool)] = False


class MalformedCallError(ValueError):
    """The call body is not JSON or not shaped like a call request."""


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What a call request tells the SDK: the run, its events and its memoized steps."""

    run_id: str
    attempt: int
    max_attempts: int | None
    disable_immediate_execution: bool
    use_api: bool
    event: dict[str, Any]
    events: list[dict[str, Any]]
    steps: dict[str, Any]
    stack: tuple[str, ...] = ()
    """Hashed IDs of completed steps in the order they completed (``ctx.stack.stack``)."""
    defers: dict[str, bool] | None = None
    """The run's defers the server has (hashed ID -> whether it can still be aborted)."""

    @classmethod
    def parse(cls, raw: object) -> CallRequest:
        try:
            body = _CallBody.model_validate(raw)
        except ValidationError as exc:
            raise MalformedCallError(str(exc)) from exc
        return cls(
            run_id=body.ctx.run_id,
            attempt=body.ctx.attempt,
            max_attempts=body.ctx.max_attempts,
            disable_immediate_execution=body.ctx.disable_immediate_execution,
            use_api=body.use_api or body.ctx.use_api,
            event=body.event,
            events=body.events,
            steps=body.steps,
            stack=tuple(item for item in body.ctx.stack.stack if isinstance(item, str)),
            defers={
                key: bool(value.get("abortable")) if isinstance(value, dict) else False
                for key, value in body.defers.items()
            },
        )

    def with_state(self, events: list[dict[str, Any]], steps: dict[str, Any]) -> CallRequest:
        """The same call with events and steps fetched from the server's API. A call that
        gave no completion order (a durable endpoint's re-entry) takes the steps' order,
        which the API gives in completion order."""
        return CallRequest(
            run_id=self.run_id,
            attempt=self.attempt,
            max_attempts=self.max_attempts,
            disable_immediate_execution=self.disable_immediate_execution,
            use_api=False,
            event=events[0] if events else self.event,
            events=events,
            steps=steps,
            stack=self.stack or tuple(steps),
            defers=self.defers,
        )

    def typed_events(self) -> list[Event]:
        raw = self.events or [self.event]
        return [Event.from_wire(item) for item in raw]
