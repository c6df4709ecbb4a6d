"""What a handler receives: the triggering events, run identity, step tools and a logger."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .event import Event
from .step import Step, SyncStep


@dataclass(frozen=True, slots=True, kw_only=True)
class _ContextFields:
    event: Event
    """The first triggering event."""
    events: list[Event]
    """Every triggering event (more than one when events are batched)."""
    run_id: str
    attempt: int
    """0-based attempt of the current request (each step's retries count separately)."""
    max_attempts: int
    logger: logging.LoggerAdapter[logging.Logger]
    """Silent while memoized steps replay, so each line is logged once per run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Context(_ContextFields):
    """The context of an ``async def`` handler; its step tools are awaited."""

    step: Step


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncContext(_ContextFields):
    """The context of a ``def`` handler; its step tools are plain calls."""

    step: SyncStep
