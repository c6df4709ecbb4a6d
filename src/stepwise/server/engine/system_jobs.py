"""The server's own jobs: wake-ups, cron ticks, pause matching and timeouts, run timeouts,
``step.fetch`` and ``step.ai.infer`` requests and bulk cancellations. Each turns into one ``Transition``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

from ... import protocol
from ...protocol import events as ev
from .. import expr
from ..store.base import Store
from ..store.records import (
    EventRecord,
    HistoryEntry,
    HistoryKind,
    Ingest,
    Job,
    JobKind,
    NewJob,
    PauseKind,
    RunChange,
    RunState,
    RunStatus,
    Settled,
    Transition,
)
from . import ai_gateway, cancellations, lifecycle, pauses
from .backoff import retry_delay_ms
from .calls import next_call
from .cron import next_cron_ms
from .driver import Driver
from .outbound import OutboundError
from .registry import Registry
from .scheduler import Scheduler

log = logging.getLogger("stepwise.jobs")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _done(job: Job, **fields: Any) -> Transition:
    return Transition(job_id=job.id, lease=job.lease, run_id=job.run_id, **fields)


class SystemJobs:
    def __init__(
        self,
        *,
        store: Store | None,
        registry: Registry,
        scheduler: Scheduler,
        driver: Driver,
        retry_interval_s: float | None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.scheduler = scheduler
        self.driver = driver
        self.retry_interval_s = retry_interval_s

    @property
    def _store(self) -> Store:
        # Only the jobs that read the store need one (unit tests build executors without).
        if self.store is None:
            raise RuntimeError("this job needs the executor to have a store")
        return self.store

    # ---- sleeps and cron ------------------------------------------------------------
    def wake(self, job: Job, state: RunState, now: int) -> Transition:
        """A sleep is over: its memo is null, and the run goes on (by the fan-in rule)."""
        name = (job.payload or {}).get("name")
        entry = HistoryEntry(HistoryKind.SLEEP_ENDED, now, job.step_id, name)
        return _done(
            job,
            settled=[Settled(job.step_id, None, (entry,))],
            continue_with=next_call(state.run.id, now, job.step_id),
        )

    def cron_tick(self, job: Job, now: int) -> Transition:
        payload = job.payload or {}
        slug = str(payload.get("function_slug", ""))
        cron = str(payload.get("cron", ""))
        spec = self.registry.get(slug)
        if spec is None or not any(t.cron == cron for t in spec.cron_triggers):
            return _done(job)
        scheduled = datetime.fromtimestamp(job.run_at / 1000, UTC)
        fired = datetime.fromtimestamp(now / 1000, UTC)
        scheduled_iso = scheduled.isoformat().replace("+00:00", "Z")
        event = EventRecord(
            internal_id=protocol.new_ulid(now),
            id=scheduled_iso,  # one run per function per tick, even if the tick runs twice
            name=ev.SCHEDULED_TIMER,
            data={
                "cron": cron,
                "scheduledAt": scheduled_iso,
                "fireAt": fired.isoformat().replace("+00:00", "Z"),
            },
            user={},
            ts=now,
            v=None,
            received_at=now,
        )
        run = Scheduler.new_run(spec, event, now, cron=cron)
        jitter = next((t.jitter for t in spec.cron_triggers if t.cron == cron), None)
        if jitter:
            try:
                spread = int(protocol.parse_duration(jitter).total_seconds() * 1000)
            except protocol.DurationError:
                spread = 0
            # Jitter spreads the start of each tick's run over [0, jitter).
            run = dataclasses.replace(
                run, start_at=now + random.randrange(spread) if spread > 0 else None
            )
        return _done(
            job,
            reschedule_at=next_cron_ms(cron, max(now, job.run_at)),
            ingest=Ingest([event], [run]),
        )

    # ---- pauses ------------------------------------------------------------------------
    async def match(self, job: Job, now: int) -> Transition:
        """An event arrived for a name some pauses wait on: resume or cancel what it matches."""
        payload = job.payload or {}
        event = await self._store.get_event(str(payload.get("event_id", "")))
        if event is None:
            return _done(job)
        wire = event.to_wire()
        candidates = await self._store.find_pauses(
            event.name,
            int(payload.get("horizon", 0)),
            lambda path: expr.index_value(expr.value_at(wire, path)),
        )
        matched = [p for p in candidates if pauses.event_matches(p, event)]
        if not matched:
            return _done(job)
        changes: list[RunChange] = []
        to_cancel = [p for p in matched if p.kind is PauseKind.CANCEL]
        states = (
            await self._store.load_run_states([p.run_id for p in to_cancel]) if to_cancel else {}
        )
        cancelled: set[str] = set()
        for pause in to_cancel:
            state = states.get(pause.run_id)
            if state is None or pause.run_id in cancelled:
                continue
            cancelled.add(pause.run_id)
            reason = f"cancelled by event {event.name} ({event.internal_id})"
            changes.append(
                lifecycle.cancel_change(state, self.scheduler, now, reason, consume_pause=pause.key)
            )
        for pause in matched:
            if pause.kind is PauseKind.CANCEL or pause.run_id in cancelled:
                continue
            changes.append(
                pauses.resume(pause, pauses.memo_for_event(pause, event), now, timed_out=False)
            )
        return _done(job, run_changes=changes)

    async def pause_timeout(self, job: Job, now: int) -> Transition:
        key = str((job.payload or {}).get("pause", ""))
        pause = await self._store.get_pause(key)
        if pause is None or pause.kind is PauseKind.CANCEL:
            return _done(job)  # resumed already: the event won the race
        return _done(
            job,
            run_changes=[pauses.resume(pause, pauses.memo_for_timeout(pause), now, timed_out=True)],
        )

    # ---- run timeouts and cancellation --------------------------------------------------
    def run_timeout(self, job: Job, state: RunState, now: int) -> Transition:
        which = (job.payload or {}).get("which")
        timeout = (job.payload or {}).get("timeout")
        if which == "start" and state.run.status is not RunStatus.SCHEDULED:
            return _done(job)
        if which == "singleton":
            reason = f"cancelled by a newer singleton run {(job.payload or {}).get('by')}"
        else:
            reason = f"the run did not {'start' if which == 'start' else 'finish'} within its {timeout} timeout"
        return _done(job, run_changes=[lifecycle.cancel_change(state, self.scheduler, now, reason)])

    async def cancel_bulk(self, job: Job, now: int) -> Transition:
        """Cancel one page of a bulk cancellation's runs; come back for the next page."""
        payload = job.payload or {}
        record = await self._store.get_cancellation(str(payload.get("cancellation_id", "")))
        if record is None:
            return _done(job)  # deleted: stop
        states = await cancellations.page(self._store, record, str(payload.get("after", "")))
        reason = f"cancelled by bulk cancellation {record.id}"
        changes = [
            lifecycle.cancel_change(state, self.scheduler, now, reason)
            for state in states
            if cancellations.hits(record, state)
        ]
        if len(states) < cancellations.CANCEL_PAGE:
            return _done(job, run_changes=changes)
        follow = NewJob(
            run_id=None,
            kind=JobKind.CANCEL_BULK,
            run_at=now,
            payload={"cancellation_id": record.id, "after": states[-1].run.id},
        )
        return _done(job, run_changes=changes, new_jobs=[follow])

    # ---- debounce and batches -----------------------------------------------------------
    async def debounce(self, job: Job, now: int) -> Transition:
        """A debounced key went quiet: start one run with the latest event it held."""
        key = str((job.payload or {}).get("key", ""))
        held = await self._store.get_debounce(key)
        if held is None:
            return _done(job)
        function_id, event_id = held
        spec = self.registry.by_id(function_id)
        event = await self._store.get_event(event_id)
        if spec is None or event is None:
            return _done(job, clear_debounce=(key, event_id))
        run = Scheduler.new_run(spec, event, now, hold=False)
        return _done(job, ingest=Ingest(runs=[run]), clear_debounce=(key, event_id))

    def batch(self, job: Job, now: int) -> Transition:
        """A batch's timeout passed: start its run with the events it has."""
        payload = job.payload or {}
        return _done(
            job, flush_batch=(str(payload.get("key", "")), str(payload.get("batch_id", "")), now)
        )

    # ---- step.fetch ---------------------------------------------------------------------
    async def gateway(self, job: Job, state: RunState, max_attempts: int, now: int) -> Transition:
        """Make a ``step.fetch`` request; any HTTP status is a result.

        A failure that may pass (unreachable, timed out) is retried; one that cannot
        (a refused destination, a body over the limit) fails the step at once.
        """
        payload = job.payload or {}
        opts = payload.get("opts") or {}
        name = payload.get("name")
        run_id = state.run.id
        try:
            memo = {"data": await self.driver.fetch(opts)}
        except OutboundError as exc:
            error = {"name": "GatewayError", "message": str(exc)}
            if exc.retryable and job.attempt + 1 < max_attempts:
                at = now + retry_delay_ms(job.attempt, self.retry_interval_s)
                entry = HistoryEntry(
                    HistoryKind.STEP_ERRORED, now, job.step_id, name, job.attempt, {"error": error}
                )
                return _done(job, retry_at=at, history=[entry])
            memo = {"error": error}
        if "data" in memo:
            entry = HistoryEntry(HistoryKind.STEP_COMPLETED, now, job.step_id, name, job.attempt)
        else:
            entry = HistoryEntry(HistoryKind.STEP_FAILED, now, job.step_id, name, job.attempt, memo)
        return _done(
            job,
            settled=[Settled(job.step_id, memo, (entry,))],
            continue_with=next_call(run_id, now, job.step_id),
        )

    # ---- step.ai.infer ------------------------------------------------------------------
    async def ai_gateway(
        self, job: Job, state: RunState, max_attempts: int, now: int
    ) -> Transition:
        """Make a ``step.ai.infer`` request to the model's provider (``engine/ai_gateway.py``).

        A 2xx JSON answer is the step's result. A 408, 429 or 5xx answer, or none at all,
        is retried while the step has attempts left, at the provider's ``Retry-After`` if
        it sent one; any other answer fails the step with the provider's status and body.
        The result, the history and the run's next call commit together, as for any step.
        """
        payload = job.payload or {}
        name = payload.get("name")
        try:
            options = ai_gateway.parse_options(payload.get("opts"))
        except ai_gateway.InvalidOptions as exc:
            answer = ai_gateway.Answer(
                {"error": {"name": ai_gateway.ERROR_NAME, "message": str(exc)}}
            )
        else:
            request = ai_gateway.build_request(options)
            try:
                response = await self.driver.outbound.request(
                    "POST", request.url, headers=request.headers, body=request.body
                )
            except OutboundError as exc:
                answer = ai_gateway.answer_of_failure(exc, options)
            else:
                answer = ai_gateway.without_secrets(
                    ai_gateway.answer_of(response, _now_ms()), options
                )
        if answer.retryable and job.attempt + 1 < max_attempts:
            # Counted from the answer, not from the start of a request that may be slow.
            backoff = _now_ms() + retry_delay_ms(job.attempt, self.retry_interval_s)
            at = answer.retry_after_ms if answer.retry_after_ms is not None else backoff
            data = {**answer.memo, "retry_at": at}
            entry = HistoryEntry(
                HistoryKind.STEP_ERRORED, now, job.step_id, name, job.attempt, data
            )
            return _done(job, retry_at=at, history=[entry])
        if answer.failed:
            entry = HistoryEntry(
                HistoryKind.STEP_FAILED, now, job.step_id, name, job.attempt, answer.memo
            )
        else:
            entry = HistoryEntry(HistoryKind.STEP_COMPLETED, now, job.step_id, name, job.attempt)
        return _done(
            job,
            settled=[Settled(job.step_id, answer.memo, (entry,))],
            continue_with=next_call(state.run.id, now, job.step_id),
        )
