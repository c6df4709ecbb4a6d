"""From stored events to the runs they start."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ...protocol import DurationError, new_ulid, parse_duration
from .. import expr
from ..store.records import EventRecord, Ingest, JobKind, NewJob, NewRun
from .pauses import cancel_pauses
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
        spec: FunctionSpec,
        event: EventRecord,
        now: int,
        *,
        cron: str | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> NewRun:
        """A run of ``spec`` for ``event``, with its cancelOn pauses and start timeout."""
        run_id = new_ulid(now)
        config = spec.record.config
        cancels = config.get("cancel")
        pauses = (
            cancel_pauses(run_id, cancels, event.to_wire(), now)
            if isinstance(cancels, list)
            else []
        )
        jobs = []
        timeouts = config.get("timeouts")
        start = timeouts.get("start") if isinstance(timeouts, dict) else None
        if isinstance(start, str) and start:
            try:
                at = now + int(parse_duration(start).total_seconds() * 1000)
            except DurationError:
                log.warning("function %s has an invalid start timeout %r", spec.slug, start)
            else:
                jobs.append(
                    NewJob(
                        run_id=run_id,
                        kind=JobKind.RUN_TIMEOUT,
                        run_at=at,
                        key=f"timeout:start:{run_id}",
                        payload={"which": "start", "timeout": start},
                    )
                )
        return NewRun(
            id=run_id,
            function_id=spec.id,
            function_slug=spec.slug,
            event_ids=(event.internal_id,),
            # The user's event id is the run's idempotency key; without one, the
            # internal id (stable across a retried send with the same seed).
            idempotency_key=idempotency_key or event.id,
            created_at=now,
            cron=cron,
            correlation_id=correlation_id,
            pauses=tuple(pauses),
            jobs=tuple(jobs),
        )

    def _expression_matches(self, spec: FunctionSpec, expression: str, event: EventRecord) -> bool:
        try:
            return expr.evaluate(expression, {"event": event.to_wire()}) is True
        except expr.ExpressionError as exc:
            log.warning(
                "trigger expression of %s failed on event %s: %s", spec.slug, event.internal_id, exc
            )
            return False
