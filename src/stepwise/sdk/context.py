"""What a handler receives: the triggering events, run identity, step tools and a logger.

Both contexts are generic: ``Context[Deps, Data]``. ``Deps`` types ``ctx.deps`` (what
middleware injected, see ``stepwise.Dependencies``); ``Data`` types ``ctx.event.data``
(a model, once ``stepwise.ext.validation`` has validated it). Unparametrised, ``ctx.deps``
is ``Any`` and ``ctx.event.data`` a ``dict``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Generic

from typing_extensions import TypeVar

from .event import Event
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Context(_ContextFields[DepsT, DataT]):
    """The context of an ``async def`` handler; its step tools are awaited."""

    step: Step


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncContext(_ContextFields[DepsT, DataT]):
    """The context of a ``def`` handler; its step tools are plain calls."""

    step: SyncStep
