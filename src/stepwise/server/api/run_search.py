"""A CEL search over runs: which of the runs a filter lists match an expression over their
triggering event and their output, found by scanning newest first.

No index can answer an arbitrary expression, so a search reads runs in batches and
evaluates the expression on each. To keep one request from reading the whole store, a
search stops after ``SCAN_LIMIT`` runs, matches found or not, and says where it stopped:
the caller continues from there (the dashboard's "Keep searching", the REST cursor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import expr
from ..store.base import Store
from ..store.records import EventRecord, RunFilter, RunRecord

SCAN_LIMIT = 2_000
# Runs read per query: large enough that a scan is a few queries, small enough that one
# that finds its page early has not read far past it.
BATCH = 250
MAX_EXPRESSION = 4_096


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Matches newest first, and where to continue the scan."""

    runs: list[RunRecord]
    events: dict[str, EventRecord] = field(default_factory=dict)  # of the matches, by id
    # The last run looked at, when more runs may match after it; None once the filter's
    # runs are exhausted.
    resume_after: RunRecord | None = None
    scanned: int = 0
    # The scan reached ``scan_limit`` before it filled the page or ran out of runs.
    stopped_early: bool = False


def check_expression(source: str) -> None:
    """Raise ``expr.ExpressionError`` (saying why) for what cannot be a search."""
    if not source.strip():
        raise expr.ExpressionError("the search expression is empty")
    if len(source) > MAX_EXPRESSION:
        raise expr.ExpressionError(
            f"the search expression is longer than {MAX_EXPRESSION} characters"
        )
    expr.check(source)


def search_variables(run: RunRecord, event: EventRecord | None) -> dict[str, Any]:
    """What an expression sees of a run: ``event`` (its first triggering event, as sent)
    and ``output`` (null until the run completes)."""
    return {"event": event.to_wire() if event else None, "output": run.output}


async def search_runs(
    store: Store,
    where: RunFilter,
    expression: str,
    *,
    limit: int,
    after: tuple[int, str] | None,
    scan_limit: int = SCAN_LIMIT,
    batch: int = BATCH,
) -> SearchPage:
    """Up to ``limit`` runs of ``where`` for which ``expression`` is true, newest first,
    after ``after``, looking at no more than ``scan_limit`` runs.

    An expression that fails on a run (a type mismatch, a helper given bad input) does not
    match it. Raises ``expr.ExpressionError`` if the expression does not compile.
    """
    check_expression(expression)
    matches: list[RunRecord] = []
    events: dict[str, EventRecord] = {}
    scanned = 0
    last: RunRecord | None = None
    while scanned < scan_limit:
        want = min(batch, scan_limit - scanned)
        runs = await store.list_runs(where, limit=want, after=after)
        firsts = await store.events_by_id([r.event_ids[0] for r in runs if r.event_ids])
        for run in runs:
            scanned += 1
            event = firsts.get(run.event_ids[0]) if run.event_ids else None
            if expr.matches(expression, search_variables(run, event)):
                matches.append(run)
                if event is not None:
                    events[event.internal_id] = event
                if len(matches) == limit:
                    return SearchPage(matches, events, resume_after=run, scanned=scanned)
        if len(runs) < want:
            return SearchPage(matches, events, resume_after=None, scanned=scanned)
        after = (runs[-1].created_at, runs[-1].id)
        last = runs[-1]
    return SearchPage(matches, events, resume_after=last, scanned=scanned, stopped_early=True)
