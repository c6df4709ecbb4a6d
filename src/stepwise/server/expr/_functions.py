"""Inngest's helper functions, registered with the ``cel`` binding as Python callbacks.

``lowercase(s)``, ``uppercase(s)``, ``json_parse(s)``, ``date(s)`` (RFC 3339 string ->
timestamp), ``now()``, ``now_plus(d)`` and ``now_minus(d)`` (``d`` a duration string such as
``"90s"``, ``"1h30m"``, ``"2d"``, or a CEL duration). A helper given the wrong kind of
argument raises, which makes the evaluation fail (as a missing overload does in cel-go).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

_UNITS = {
    "ns": 1e-3,
    "us": 1.0,
    "µs": 1.0,
    "μs": 1.0,
    "ms": 1e3,
    "s": 1e6,
    "m": 60e6,
    "h": 3600e6,
    "d": 86400e6,
    "w": 7 * 86400e6,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """A Go-style duration (``"300ms"``, ``"-1.5h"``, ``"2h45m"``), plus ``d`` and ``w`` units."""
    body = text.strip()
    sign = 1.0
    if body[:1] in "+-" and body:
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return timedelta(0)
    micros = 0.0
    pos = 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            break
        micros += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(body) or not body:
        raise ValueError(f"invalid duration {text!r}")
    return timedelta(microseconds=sign * micros)


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name}() expects a string, got {type(value).__name__}")
    return value


def lowercase(value: Any) -> str:
    return _string(value, "lowercase").lower()


def uppercase(value: Any) -> str:
    return _string(value, "uppercase").upper()


def json_parse(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return json.loads(_string(value, "json_parse"))


def date(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = _string(value, "date").strip()
    if len(text) > 10 and text[10] in "tT":
        text = text[:10] + "T" + text[11:]
    if text.endswith("z"):
        text = text[:-1] + "Z"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def _duration(value: Any, name: str) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(_string(value, name))


def now_plus(value: Any) -> datetime:
    return now() + _duration(value, "now_plus")


def now_minus(value: Any) -> datetime:
    return now() - _duration(value, "now_minus")


HELPERS: dict[str, Callable[..., Any]] = {
    "lowercase": lowercase,
    "uppercase": uppercase,
    "json_parse": json_parse,
    "date": date,
    "now": now,
    "now_plus": now_plus,
    "now_minus": now_minus,
}
# Functions whose result depends on the clock: an expression calling them is never constant.
CLOCK_FUNCTIONS = frozenset({"now", "now_plus", "now_minus"})


class _QuietHelpers(logging.Filter):
    """Drop the binding's warning for a helper that raised: the caller gets the error anyway."""

    _prefixes = tuple(f"Python function '{name}' failed" for name in HELPERS)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._prefixes)


logging.getLogger("cel").addFilter(_QuietHelpers())
