"""The run's next discovery call, keyed by the step that settled before it.

One key per settled step, not one per run: a result that lands while an earlier
discovery call is in flight gets a call of its own, so it can never be dropped as a
duplicate of a call that was computed without it.
"""

from __future__ import annotations

from ..store.records import JobKind, NewJob


def next_call(run_id: str, now: int, after: str) -> NewJob:
    """The discovery call that follows ``after`` (a step id, or another unique mark)."""
    return NewJob(run_id=run_id, kind=JobKind.CALL, run_at=now, key=f"discovery:{run_id}:{after}")
