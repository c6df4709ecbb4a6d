"""Event payloads checked against pydantic models, when sent and when received.

``ValidationMiddleware({"user/signup": Signup})`` validates the data of every
``user/signup`` event the client sends (``client.send``, ``step.send_event``) and of every
one a function receives. An invalid payload is refused with an ``InvalidEventError`` that
names the event and each bad field (``data.email: Field required``): on send it is raised
to the caller and nothing is sent; on receipt the run fails at once, without retries
(the same payload would fail again).

A received event's ``data`` becomes the model instance, so a handler typed
``stepwise.Context[Any, Signup]`` reads ``ctx.event.data.email`` checked by mypy. Events
of other names pass unchanged (``reject_unknown=True`` refuses them instead). Register it
after ``EncryptionMiddleware`` if both are used: it then sees decrypted data coming in,
and data going out before it is encrypted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, NonRetriableError
from ..sdk.event import Event
from ..sdk.middleware import FunctionRun, Middleware, RunInput, SendInput


class InvalidEventError(NonRetriableError):
    """An event's data does not fit its model; ``errors`` lists ``(field, message)``."""

    def __init__(self, event_name: str, errors: list[tuple[str, str]]) -> None:
        details = "; ".join(f"{field}: {message}" for field, message in errors)
        super().__init__(f"event {event_name!r} is invalid: {details}")
        self.event_name = event_name
        self.errors = errors


def _field(location: tuple[int | str, ...]) -> str:
    path = "data"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


class ValidationMiddleware(Middleware):
    """Validates event data per event name; see the module docstring."""

    name = "stepwise/validation"

    def __init__(
        self, schemas: Mapping[str, type[BaseModel]], *, reject_unknown: bool = False
    ) -> None:
        for event_name, model in schemas.items():
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise ConfigError(f"the schema of {event_name!r} must be a pydantic model class")
        self.schemas = dict(schemas)
        self.reject_unknown = reject_unknown

    def validate(self, event_name: str, data: Any) -> BaseModel | None:
        """The model instance for ``data``, ``None`` for an event without a schema."""
        model = self.schemas.get(event_name)
        if model is None:
            if self.reject_unknown:
                raise InvalidEventError(event_name, [("name", "no schema for this event")])
            return None
        if isinstance(data, model):
            return data
        if isinstance(data, BaseModel):
            data = data.model_dump()
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = [(_field(tuple(e["loc"])), e["msg"]) for e in exc.errors()]
            raise InvalidEventError(event_name, errors) from None

    def transform_send_input(self, send: SendInput) -> None:
        for event in send.events:
            validated = self.validate(str(event.get("name")), event.get("data"))
            if validated is not None:
                event["data"] = validated.model_dump(mode="json")

    def transform_input(self, run: FunctionRun, input: RunInput) -> None:
        typed = {id(e): self._typed(e) for e in (input.event, *input.events)}
        input.event = typed[id(input.event)]
        input.events = [typed[id(e)] for e in input.events]

    def _typed(self, event: Event[Any]) -> Event[Any]:
        if event.name.startswith("inngest/"):  # the server's own events: never user schemas
            return event
        validated = self.validate(event.name, event.data)
        if validated is None:
            return event
        return Event(
            name=event.name, data=validated, id=event.id, ts=event.ts, user=event.user, v=event.v
        )


__all__ = ["InvalidEventError", "ValidationMiddleware"]
