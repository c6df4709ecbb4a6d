"""Step results for hand-built transitions."""

from __future__ import annotations

from typing import Any

from stepwise.server.store.records import Settled


def results(*pairs: tuple[str, Any]) -> list[Settled]:
    """``Settled`` records for ``(step id, memo)`` pairs, in completion order."""
    return [Settled(step_id, memo) for step_id, memo in pairs]
