"""The built-in logger middleware: ``ctx.logger``, silent while memoized steps replay.

Every request re-runs the function from the top, so a plain logger would repeat each
line once per later step. ``LoggerMiddleware`` (always first in every client's stack)
hands the handler a logger that lets records through only from ``before_execution`` on,
that is once the code runs for the first time in the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

from .middleware import FunctionRun, Middleware, RunInput


class ReplayAwareLogger(logging.LoggerAdapter[logging.Logger]):
    """``logging.Logger``-like: ``debug``, ``info``, ``warning``, ``error``, ``exception``..."""

    def __init__(self, logger: logging.Logger, is_replaying: Callable[[], bool]) -> None:
        super().__init__(logger, {})
        self._is_replaying = is_replaying

    def isEnabledFor(self, level: int) -> bool:
        if self._is_replaying():
            return False
        return self.logger.isEnabledFor(level)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs


class LoggerMiddleware(Middleware):
    """Gives each run ``ctx.logger``: the client's logger, quiet during replay."""

    name = "stepwise/logger"

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def transform_input(self, run: FunctionRun, input: RunInput) -> None:
        input.logger = ReplayAwareLogger(self.logger, lambda: run.replaying)
