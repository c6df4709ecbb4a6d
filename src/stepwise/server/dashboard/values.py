"""Large JSON values on the dashboard's pages, shown a part at a time.

A page renders a value's first ``PART_CHARS`` characters; the rest comes a part per click
(``value_pages``: ``/runs/{id}/value``, ``/events/{id}/value``; htmx appends it), so a step
that returned megabytes opens as fast as one that returned a number, and nothing of it is
out of reach.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

PART_CHARS = 20_000


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def pretty(value: Any, more: str | None = None) -> dict[str, Any]:
    """A JSON value for a ``<pre>``: indented, its first part only; ``more`` is the URL
    (with its query, without ``part``) that serves the following parts."""
    text = dumps(value)
    return {"text": text[:PART_CHARS], "size": len(text), "more": next_part(more, 1, len(text))}


def next_part(url: str | None, part: int, size: int) -> dict[str, Any] | None:
    """The button that fetches part ``part`` (counted from 0), if the value has one."""
    if url is None or part * PART_CHARS >= size:
        return None
    return {
        "url": f"{url}&part={part}",
        "first": part * PART_CHARS + 1,
        "last": min((part + 1) * PART_CHARS, size),
        "size": size,
    }


def run_value_url(run_id: str, of: str) -> str:
    return f"/runs/{run_id}/value?of={quote(of, safe=':')}"


def shown_memo(memo: Any) -> Any:
    """A step's memo as a person reads it: a ``step.run`` result without its wrapper."""
    return memo.get("data") if isinstance(memo, dict) and set(memo) == {"data"} else memo
