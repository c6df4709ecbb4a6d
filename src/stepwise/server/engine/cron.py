"""Cron schedules: the next tick of an expression, with an optional ``TZ=Zone`` prefix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter


def next_cron_ms(expr: str, after_ms: int) -> int:
    """The first tick of ``expr`` strictly after ``after_ms``.

    Raises ``ValueError`` (or ``KeyError`` for an unknown zone) if it never fires.
    """
    tz: Any = UTC
    text = expr.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        zone, _, text = text.partition(" ")
        tz = ZoneInfo(zone.split("=", 1)[1])
    text = text.strip()
    if not croniter.is_valid(text):
        raise ValueError(f"invalid cron expression {expr!r}")
    base = datetime.fromtimestamp(after_ms / 1000, tz)
    nxt = croniter(text, base).get_next(datetime)
    return int(nxt.timestamp() * 1000)
