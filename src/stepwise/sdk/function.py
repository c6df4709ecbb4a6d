"""A durable function: its handler, triggers and options, and the config it syncs."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ..errors import ConfigError
from ..protocol import DEFAULT_RETRIES, MAX_RETRIES
from .checkpoint import Checkpointing
from .flow import Batch, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle
from .options import CancelOn, Timeouts
from .triggers import Trigger, TriggerEvent

if TYPE_CHECKING:
    from .context import Context, SyncContext
    from .middleware import Middleware

AsyncHandler = Callable[["Context[Any, Any]"], Awaitable[Any]]
SyncHandler = Callable[["SyncContext[Any, Any]"], Any]

# Flow-control options travel in the function config under these keys; the builder emits
# each one that is set (objects with a ``to_wire`` method, or tuples of them, are converted
# on the way).
_FLOW_CONTROL_WIRE_KEYS = {
    "concurrency": "concurrency",
    "throttle": "throttle",
    "rate_limit": "rateLimit",
    "debounce": "debounce",
    "batch_events": "batchEvents",
    "priority": "priority",
    "singleton": "singleton",
    "idempotency": "idempotency",
    "cancel_on": "cancel",
    "timeouts": "timeouts",
}


@dataclass(frozen=True, slots=True)
class FunctionOptions:
    """Options of one function, in Python names; ``None`` means "server default"."""

    name: str | None = None
    description: str | None = None
    retries: int | None = None
    concurrency: tuple[Concurrency, ...] | None = None
    run_concurrency: Concurrency | None = None
    throttle: Throttle | None = None
    rate_limit: RateLimit | None = None
    debounce: Debounce | None = None
    batch_events: Batch | None = None
    priority: Priority | None = None
    singleton: Singleton | None = None
    idempotency: str | None = None
    cancel_on: tuple[CancelOn, ...] | None = None
    timeouts: Timeouts | None = None
    checkpointing: Checkpointing | None = None
    """Whether calls run sequential steps in one request (None: the client's setting).
    Not part of the synced config: it changes only how this SDK answers calls."""

    def __post_init__(self) -> None:
        if self.retries is not None and not (0 <= self.retries <= MAX_RETRIES):
            raise ConfigError(f"retries must be between 0 and {MAX_RETRIES}")
        if self.batch_events is not None:
            # The server refuses these combinations (``Function.Validate``, reference §2.3).
            clashing = [
                option
                for option in ("cancel_on", "debounce", "singleton", "priority")
                if getattr(self, option) is not None
            ]
            if clashing:
                raise ConfigError(f"batch_events cannot be combined with {', '.join(clashing)}")
        if self.idempotency is not None and self.rate_limit is not None:
            # The server turns idempotency into a rate limit, replacing any other one.
            raise ConfigError("idempotency cannot be combined with rate_limit")


class Function:
    """A function registered on a client; pass it to an adapter's ``serve`` to expose it."""

    def __init__(
        self,
        *,
        app_id: str,
        fn_id: str,
        triggers: tuple[Trigger, ...],
        options: FunctionOptions,
        handler: AsyncHandler | SyncHandler,
        on_failure: AsyncHandler | SyncHandler | None = None,
        middleware: Sequence[Middleware] = (),
        deferred: bool = False,
    ) -> None:
        if not fn_id:
            raise ConfigError("fn_id must not be empty")
        if not callable(handler):
            raise ConfigError(f"a function handler must be callable, not {handler!r}")
        self.app_id = app_id
        self.fn_id = fn_id
        self.triggers = triggers
        self.options = options
        self.handler = handler
        self.middleware: tuple[Middleware, ...] = tuple(middleware)
        """This function's own middleware, run after the client's."""
        self.deferred = deferred
        """Made by ``create_defer``: runs only when another run defers it (``ctx.defer``)."""
        self.on_failure: Function | None = None
        """The failure handler, served as a function of its own (see ``failure_function``)."""
        if on_failure is not None:
            self.on_failure = failure_function(self, on_failure)
        # Callable objects count too: an ``async def __call__`` must be awaited, not threaded.
        call_method = None if inspect.isfunction(handler) else type(handler).__call__
        self.is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            call_method
        )

    @property
    def id(self) -> str:
        """The composite ID servers know the function by: ``<app_id>-<fn_id>``."""
        return f"{self.app_id}-{self.fn_id}"

    @property
    def name(self) -> str:
        return self.options.name or self.fn_id

    @property
    def checkpointing(self) -> Checkpointing | None:
        return self.options.checkpointing

    @property
    def max_attempts(self) -> int:
        retries = self.options.retries
        return (DEFAULT_RETRIES if retries is None else retries) + 1

    def get_config(self, serve_url: str) -> dict[str, Any]:
        """The function config object of the register payload (reference §2.2 item 4)."""
        query = urlencode({"fnId": self.id, "stepId": "step"})
        step: dict[str, Any] = {
            "id": "step",
            "name": "step",
            "runtime": {"type": "http", "url": f"{serve_url}?{query}"},
        }
        if self.options.retries is not None:
            # "attempts" is the number of retries, despite its name.
            step["retries"] = {"attempts": self.options.retries}
        config: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "triggers": [t.to_wire() for t in self.triggers],
            "steps": {"step": step},
        }
        for option in fields(self.options):
            wire_key = _FLOW_CONTROL_WIRE_KEYS.get(option.name)
            value = getattr(self.options, option.name)
            if wire_key is not None and value is not None:
                config[wire_key] = _to_wire(value)
        if self.options.run_concurrency is not None:
            # The run-level form: a slot held for the whole run, beside any step limits.
            config["concurrency"] = {
                "fn": [self.options.run_concurrency.to_wire()],
                "step": config.get("concurrency", []),
            }
        return config

    def __repr__(self) -> str:
        return f"Function(id={self.id!r})"


FUNCTION_FAILED_EVENT = "inngest/function.failed"


def failure_function(function: Function, handler: AsyncHandler | SyncHandler) -> Function:
    """``on_failure`` as the server sees it: a function triggered by this one's failure event.

    Its ID is ``<composite id>-failure`` and it is not retried (reference §2.2 item 4); the
    handler's ``ctx.event`` is the ``inngest/function.failed`` event, whose ``data.event`` is
    the original event and ``data.error`` the error.
    """
    if not callable(handler):
        raise ConfigError(f"on_failure must be callable, not {handler!r}")
    trigger = TriggerEvent(
        event=FUNCTION_FAILED_EVENT,
        expression=f"event.data.function_id == '{function.id}'",
    )
    return Function(
        app_id=function.app_id,
        fn_id=f"{function.fn_id}-failure",
        triggers=(trigger,),
        options=FunctionOptions(name=f"{function.name} (failure)", retries=0),
        handler=handler,
        middleware=function.middleware,
    )


def _to_wire(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_to_wire(item) for item in value]
    to_wire = getattr(value, "to_wire", None)
    return to_wire() if callable(to_wire) else value
