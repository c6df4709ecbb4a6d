"""What a handler receives: the triggering events, run identity, step tools and a logger.

Both contexts are generic: ``Context[Deps, Data]``. ``Deps`` types ``ctx.deps`` (what
middleware injected, see ``stepwise.Dependencies``); ``Data`` types ``ctx.event.data``
(a model, once ``stepwise.ext.validation`` has validated it). Unparametrised, ``ctx.deps``
is ``Any`` and ``ctx.event.data`` a ``dict``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Generic

from typing_extensions import TypeVar

from .defer import Defer, Parent
from .event import Event
from .metadata import StepMetadata
from .step import Step, SyncStep

DepsT = TypeVar("DepsT", default=Any)
DataT = TypeVar("DataT", default=dict[str, Any])


@dataclass(frozen=True, slots=True, kw_only=True)
class _ContextFields(Generic[DepsT, DataT]):
    event: Event[DataT]
    """The first triggering event."""
    events: list[Event[DataT]]
    """Every triggering event (more than one when events are batched)."""
    run_id: str
    attempt: int
    """0-based attempt of the current request (each step's retries count separately)."""
    max_attempts: int
    logger: logging.Logger | logging.LoggerAdapter[Any]
    """Silent while memoized steps replay, so each line is logged once per run."""
    deps: DepsT
    """Values injected by middleware (``transform_input``), as attributes."""
    defer: Defer
    """``ctx.defer(id, function=..., data=...)``: start a deferred function when this run
    ends, completed or failed (see ``client.create_defer``)."""
    metadata: StepMetadata
    """``ctx.metadata(values)`` inside a ``step.run`` body: metadata that goes out with the
    step's result (on the step, or with ``run=True`` on the run)."""
    sessions: dict[str, str] = field(default_factory=dict)
    """The sessions every one of the run's events has (at most five); they go on to the
    events the run sends, the functions it invokes and the runs it defers."""
    parents: list[Parent] = field(default_factory=list)
    """In a deferred function: the run that deferred it, one per event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Context(_ContextFields[DepsT, DataT]):
    """The context of an ``async def`` handler; its step tools are awaited."""

    step: Step


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncContext(_ContextFields[DepsT, DataT]):
    """The context of a ``def`` handler; its step tools are plain calls."""

    step: SyncStep
