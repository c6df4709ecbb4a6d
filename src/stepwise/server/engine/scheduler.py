"""From stored events to the runs they start."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ...protocol import new_ulid
from ..store.records import EventRecord, Ingest, NewRun
from .registry import FunctionSpec, Registry

log = logging.getLogger("stepwise.scheduler")


class Scheduler:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def plan(self, events: Iterable[EventRecord], now: int) -> Ingest:
        """The runs ``events`` start: one per (event, function), however many triggers match."""
        events = list(events)
        runs: list[NewRun] = []
        for event in events:
            started: set[str] = set()
            for spec, trigger in self.registry.triggered_by(event.name):
                if spec.id in started:
                    continue
                if trigger.expression and not self._expression_matches(
                    spec, trigger.expression, event
                ):
                    continue
                started.add(spec.id)
                runs.append(self.new_run(spec, event, now))
        return Ingest(events=events, runs=runs)

    @staticmethod
    def new_run(
        spec: FunctionSpec, event: EventRecord, now: int, cron: str | None = None
    ) -> NewRun:
        return NewRun(
            id=new_ulid(now),
            function_id=spec.id,
            function_slug=spec.slug,
            event_ids=(event.internal_id,),
            # The user's event id is the run's idempotency key; without one, the
            # internal id (stable across a retried send with the same seed).
            idempotency_key=event.id,
            created_at=now,
            cron=cron,
        )

    def _expression_matches(self, spec: FunctionSpec, expression: str, event: EventRecord) -> bool:
        from ..expr import ExpressionError, evaluate

        try:
            return evaluate(expression, {"event": event.to_wire()}) is True
        except ExpressionError as exc:
            log.warning(
                "trigger expression of %s failed on event %s: %s", spec.slug, event.internal_id, exc
            )
            return False
