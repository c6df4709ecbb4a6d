"""A logger for function code that stays quiet while memoized steps are replayed.

Every request re-runs the function from the top, so a plain logger would repeat each
line once per later step. This one lets records through only once execution has gone
past the last memoized step, i.e. while running code for the first time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any


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
