"""Why an event started no run (the events page, ``GET /v1/events/{id}/reasons``): only
what the server can tell from what it stores and from the functions synced now.

The engine's own planner (``Scheduler.plan``) says which runs the event would start now;
the store then says whether a debounce or an open batch holds the event, or which run took
the idempotency key the run would have used. A function changed since the event arrived
can make the answer differ from what happened then: the page says so when nothing fits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..store.base import Store
from ..store.records import EventRecord
from .registry import Registry
from .scheduler import Scheduler


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason, of one function (None: of the event as a whole); ``run_id`` links it."""

    function: str | None
    text: str
    run_id: str | None = None


async def why_no_run(store: Store, registry: Registry, event: EventRecord) -> list[Reason]:
    if event.copy > 0:
        return [
            Reason(
                None,
                "a repeated copy of an event already received (the same id, sent again):"
                " only the first copy starts runs",
            )
        ]
    triggered = {spec.id: spec.slug for spec, _ in registry.triggered_by(event.name)}
    if not triggered:
        return [Reason(None, f"no function is triggered by {event.name}")]
    planned = Scheduler(registry).plan([event], int(time.time() * 1000)).runs
    reasons = [
        Reason(slug, "its trigger's if expression is false for this event")
        for function_id, slug in sorted(triggered.items(), key=lambda item: item[1])
        if function_id not in {run.function_id for run in planned}
    ]
    for run in planned:
        slug = run.function_slug
        if run.debounce is not None:
            held = await store.get_debounce(run.debounce.key)
            if held is not None and held[1] == event.internal_id:
                reasons.append(
                    Reason(slug, "held by debounce: the run starts once the key is quiet")
                )
            else:
                reasons.append(
                    Reason(
                        slug, "debounced: another event with the same debounce key took its place"
                    )
                )
        elif run.batch is not None:
            if event.internal_id in await store.batch_holding(run.batch.key):
                reasons.append(
                    Reason(slug, "waiting in a batch: the run starts when it is full or times out")
                )
            else:
                reasons.append(
                    Reason(slug, "batched: its run is listed under the batch's first event")
                )
        else:
            claim = await store.idempotency_claim(run.function_id, run.idempotency_key)
            if claim is not None:
                what = (
                    f"an event with the same id {event.id!r}"
                    if run.idempotency_key == event.id
                    else f"the same idempotency key {run.idempotency_key!r}"
                )
                reasons.append(Reason(slug, f"deduplicated: {what} already started a run", claim))
            else:
                reasons.append(
                    Reason(
                        slug,
                        "no run is stored for it: the function may have changed since the"
                        " event arrived, or its run was deleted by retention",
                    )
                )
    return reasons
