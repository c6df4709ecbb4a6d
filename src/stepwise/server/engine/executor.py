"""Runs one leased job and turns what happened into one ``Transition``.

The executor never writes piecemeal: the memo of a step, the run's next job, any timer,
the run's final status and the events that report it all go into one transition, which
the store commits atomically (or drops whole if the job's lease was lost).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from ... import protocol
from ...protocol import GeneratorOp, Opcode, OpParseError, WireError
from ...protocol import events as ev
from ...protocol import headers as h
from ..store.records import (
    EventRecord,
    HistoryEntry,
    HistoryKind,
    Ingest,
    Job,
    JobKind,
    NewJob,
    RunRecord,
    RunState,
    RunStatus,
    RunUpdate,
    Transition,
)
from .backoff import clamp_retry_after, retry_delay_ms
from .driver import Driver, SdkReply, build_call_body
from .registry import FunctionSpec, Registry
from .scheduler import Scheduler

log = logging.getLogger("stepwise.executor")

MAX_SLEEP = timedelta(days=366)

# Ops that later issues implement; until then a step using one fails with a clear error.
_UNSUPPORTED_OPS = {
    Opcode.WAIT_FOR_EVENT,
    Opcode.INVOKE_FUNCTION,
    Opcode.AI_GATEWAY,
    Opcode.GATEWAY,
    Opcode.WAIT_FOR_SIGNAL,
    Opcode.DEFER_ADD,
    Opcode.DEFER_ABORT,
    Opcode.SYNC_RUN_COMPLETE,
}


_FINISH_EVENTS = {ev.FUNCTION_FINISHED, ev.FUNCTION_FAILED, ev.FUNCTION_CANCELLED}


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Outcome:
    """What one job's execution changes, accumulated, then frozen into a ``Transition``."""

    job: Job
    run_id: str
    now: int
    run_fields: dict[str, Any] = field(default_factory=dict)
    memos: list[tuple[str, Any]] = field(default_factory=list)
    jobs: list[NewJob] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)

    def note(
        self,
        kind: HistoryKind,
        step_id: str | None = None,
        name: str | None = None,
        attempt: int | None = None,
        data: Any = None,
    ) -> None:
        self.history.append(HistoryEntry(kind, self.now, step_id, name, attempt, data))

    def transition(self, **extra: Any) -> Transition:
        return Transition(
            job_id=self.job.id,
            lease=self.job.lease,
            run_id=self.run_id,
            memos=self.memos,
            new_jobs=self.jobs,
            run_update=RunUpdate(**self.run_fields) if self.run_fields else None,
            history=self.history,
            **extra,
        )


class Executor:
    def __init__(
        self,
        *,
        registry: Registry,
        scheduler: Scheduler,
        driver: Driver,
        retry_interval_s: float | None = None,
    ) -> None:
        self.registry = registry
        self.scheduler = scheduler
        self.driver = driver
        self.retry_interval_s = retry_interval_s

    async def execute(self, job: Job, state: RunState | None) -> Transition:
        if job.kind is JobKind.CRON:
            return self._cron_tick(job, now_ms())
        if state is None or state.run.status.terminal:
            return Transition(job_id=job.id, lease=job.lease, run_id=job.run_id)
        if job.kind is JobKind.WAKE:
            # The sleep is over: its memo is null, and the job becomes the next discovery call.
            now = now_ms()
            name = (job.payload or {}).get("name")
            return Transition(
                job_id=job.id,
                lease=job.lease,
                run_id=job.run_id,
                memos=[(job.step_id, None)],
                become_call_at=now,
                history=[HistoryEntry(HistoryKind.SLEEP_ENDED, now, job.step_id, name)],
                run_update=RunUpdate(force_step_plan=False) if state.run.force_step_plan else None,
            )
        spec = self.registry.get(state.run.function_slug)
        if spec is None:
            error = {
                "name": "Error",
                "message": f"could not find function with ID: {state.run.function_slug}",
            }
            return self._finish(_Outcome(job, state.run.id, now_ms()), state, error=error)
        body = build_call_body(
            state,
            step_id=job.step_id,
            attempt=job.attempt,
            max_attempts=spec.max_attempts,
            force_step_plan=state.run.force_step_plan,
        )
        reply = await self.driver.call(
            spec.url,
            body,
            run_id=state.run.id,
            step_id=job.step_id,
            request_version=state.run.request_version,
        )
        return self.handle_reply(job, state, spec, reply, now_ms())

    # ---- replies ---------------------------------------------------------------
    def handle_reply(
        self, job: Job, state: RunState, spec: FunctionSpec, reply: SdkReply, now: int
    ) -> Transition:
        run = state.run
        out = _Outcome(job, run.id, now)
        if run.status is RunStatus.SCHEDULED:
            out.run_fields.update(status=RunStatus.RUNNING, started_at=now)
            out.note(HistoryKind.RUN_STARTED)
        version = reply.header(h.REQ_VERSION)
        if run.request_version == -1 and version is not None and version.lstrip("-").isdigit():
            out.run_fields["request_version"] = int(version)

        if reply.transport_error is not None:
            error = {
                "name": "Error",
                "message": f"could not reach the app: {reply.transport_error}",
            }
            return self._fail_attempt(out, state, spec, error, no_retry=False, retry_after=None)
        if 200 <= reply.status < 300 and not reply.from_sdk:
            message = "the response did not come from an Inngest SDK (no X-Inngest-SDK header)"
            return self._fail_attempt(
                out,
                state,
                spec,
                {"name": "Error", "message": message},
                no_retry=False,
                retry_after=None,
            )
        no_retry = (reply.header(h.NO_RETRY) or "").strip().lower() == "true"
        retry_after = _parse_retry_after(reply.header(h.RETRY_AFTER), now)

        if reply.status == 200:
            return self._finish(out, state, output=(reply.body,))
        if reply.status == 206:
            try:
                ops = protocol.parse_ops(reply.body)
            except OpParseError as exc:
                error = {"name": "Error", "message": f"unreadable response from the SDK: {exc}"}
                return self._fail_attempt(out, state, spec, error, no_retry=False, retry_after=None)
            return self._apply_ops(out, state, spec, ops, no_retry, retry_after)
        if reply.from_sdk:
            raw = reply.body if reply.body is not None else reply.raw.decode("utf-8", "replace")
            error = WireError.from_wire(raw).to_wire()
        else:
            text = reply.raw[:500].decode("utf-8", "replace")
            error = {"name": "Error", "message": f"the app answered HTTP {reply.status}: {text}"}
        return self._fail_attempt(
            out, state, spec, error, no_retry=no_retry, retry_after=retry_after
        )

    def _apply_ops(
        self,
        out: _Outcome,
        state: RunState,
        spec: FunctionSpec,
        ops: list[GeneratorOp],
        no_retry: bool,
        retry_after: int | None,
    ) -> Transition:
        job, run_id, now = out.job, out.run_id, out.now
        discovery = False
        retry_at: int | None = None
        complete: tuple[Any] | None = None
        real_ops = [op for op in ops if op.op is not Opcode.NONE]
        if len(real_ops) > 1 and not state.run.force_step_plan:
            # Parallel steps: from now on every step must be planned, not run inline.
            out.run_fields["force_step_plan"] = True
        for op in real_ops:
            name = _step_name(op)
            if op.op in (Opcode.STEP_RUN, Opcode.STEP):
                out.memos.append(
                    (op.id, {"data": op.data} if op.op is Opcode.STEP_RUN else op.data)
                )
                out.note(HistoryKind.STEP_COMPLETED, op.id, name, job.attempt)
                discovery = True
            elif op.op is Opcode.STEP_ERROR:
                error = WireError.from_wire(op.error).to_wire()
                if not no_retry and job.attempt + 1 < spec.max_attempts:
                    backoff = now + retry_delay_ms(job.attempt, self.retry_interval_s)
                    retry_at = retry_after if retry_after is not None else backoff
                    out.note(
                        HistoryKind.STEP_ERRORED,
                        op.id,
                        name,
                        job.attempt,
                        {"error": error, "retry_at": retry_at},
                    )
                else:
                    out.memos.append((op.id, {"error": error}))
                    out.note(HistoryKind.STEP_FAILED, op.id, name, job.attempt, {"error": error})
                    discovery = True
            elif op.op is Opcode.STEP_FAILED:
                error = WireError.from_wire(op.error).to_wire()
                out.memos.append((op.id, {"error": error}))
                out.note(HistoryKind.STEP_FAILED, op.id, name, job.attempt, {"error": error})
                discovery = True
            elif op.op is Opcode.STEP_PLANNED:
                out.jobs.append(
                    NewJob(
                        run_id=run_id,
                        kind=JobKind.CALL,
                        run_at=now,
                        step_id=op.id,
                        key=f"step:{run_id}:{op.id}",
                    )
                )
                out.note(HistoryKind.STEP_PLANNED, op.id, name)
            elif op.op is Opcode.SLEEP:
                wake = _sleep_until(op, now)
                if wake is None:
                    error = {"name": "Error", "message": f"invalid sleep duration {op.name!r}"}
                    out.memos.append((op.id, {"error": error}))
                    out.note(HistoryKind.STEP_FAILED, op.id, name, None, {"error": error})
                    discovery = True
                else:
                    out.jobs.append(
                        NewJob(
                            run_id=run_id,
                            kind=JobKind.WAKE,
                            run_at=wake,
                            step_id=op.id,
                            key=f"wake:{run_id}:{op.id}",
                            payload={"name": name},
                        )
                    )
                    out.note(HistoryKind.SLEEP_STARTED, op.id, name, None, {"until": _iso_ms(wake)})
            elif op.op is Opcode.RUN_COMPLETE:
                complete = (op.data,)
            elif op.op is Opcode.DISCOVERY_REQUEST:
                discovery = True
            elif op.op in _UNSUPPORTED_OPS:
                error = {
                    "name": "NotSupportedError",
                    "message": f"{op.op.value} is not supported by this server yet",
                }
                out.memos.append((op.id, {"error": error}))
                out.note(HistoryKind.STEP_FAILED, op.id, name, None, {"error": error})
                discovery = True
        if complete is not None:
            return self._finish(out, state, output=complete)
        if retry_at is not None and not out.memos and not out.jobs:
            return out.transition(retry_at=retry_at)
        if discovery:
            out.jobs.append(
                NewJob(run_id=run_id, kind=JobKind.CALL, run_at=now, key=f"discovery:{run_id}")
            )
        return out.transition()

    def _fail_attempt(
        self,
        out: _Outcome,
        state: RunState,
        spec: FunctionSpec,
        error: dict[str, Any],
        *,
        no_retry: bool,
        retry_after: int | None,
    ) -> Transition:
        job, now = out.job, out.now
        if not no_retry and job.attempt + 1 < spec.max_attempts:
            backoff = now + retry_delay_ms(job.attempt, self.retry_interval_s)
            at = retry_after if retry_after is not None else backoff
            log.info(
                "run %s attempt %d failed, retrying: %s",
                state.run.id,
                job.attempt,
                error.get("message"),
            )
            out.note(
                HistoryKind.ATTEMPT_FAILED,
                None,
                None,
                job.attempt,
                {"error": error, "retry_at": at},
            )
            return out.transition(retry_at=at)
        return self._finish(out, state, error=error)

    # ---- ends of runs ------------------------------------------------------------
    def _finish(
        self,
        out: _Outcome,
        state: RunState,
        *,
        output: tuple[Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> Transition:
        now = out.now
        fields = out.run_fields
        if error is not None:
            error = _standard_error(error)
            fields.update(status=RunStatus.FAILED, error=error, output=error, has_output=True)
            out.note(HistoryKind.RUN_FAILED, None, None, out.job.attempt, {"error": error})
        else:
            result = output[0] if output else None
            fields.update(status=RunStatus.COMPLETED, output=result, has_output=True)
            out.note(HistoryKind.RUN_COMPLETED)
        fields["ended_at"] = now
        fields.setdefault("started_at", now)
        # A run started by a finish event does not report its own finish: the reference
        # does not re-report these recursively, and it keeps such runs from looping.
        trigger = state.events[0].name if state.events else ""
        if trigger in _FINISH_EVENTS:
            return out.transition(clear_run_jobs=True)
        events = self._finish_events(state.run, state.events, now, output=output, error=error)
        return out.transition(clear_run_jobs=True, ingest=self.scheduler.plan(events, now))

    def _finish_events(
        self,
        run: RunRecord,
        events: list[EventRecord],
        now: int,
        *,
        output: tuple[Any] | None,
        error: dict[str, Any] | None,
    ) -> list[EventRecord]:
        wire_events = [e.to_wire() for e in events]
        data: dict[str, Any] = {
            "function_id": run.function_slug,
            "run_id": run.id,
            "event": wire_events[0] if wire_events else {},
            "events": wire_events,
        }
        if error is not None:
            data["error"] = error
        elif output is not None:
            data["result"] = output[0]
        status = RunStatus.FAILED if error is not None else RunStatus.COMPLETED
        data["_inngest"] = {"status": status.value}
        out = []
        names = (
            [ev.FUNCTION_FAILED, ev.FUNCTION_FINISHED]
            if error is not None
            else [ev.FUNCTION_FINISHED]
        )
        for name in names:
            internal = protocol.new_ulid(now)
            # function.failed carries the run id as its event id, as the reference does.
            event_id = run.id if name == ev.FUNCTION_FAILED else internal
            out.append(
                EventRecord(
                    internal_id=internal,
                    id=event_id,
                    name=name,
                    data=data,
                    user={},
                    ts=now,
                    v=None,
                    received_at=now,
                )
            )
        return out

    # ---- cron --------------------------------------------------------------------
    def _cron_tick(self, job: Job, now: int) -> Transition:
        payload = job.payload or {}
        slug = str(payload.get("function_slug", ""))
        expr = str(payload.get("cron", ""))
        spec = self.registry.get(slug)
        if spec is None or not any(t.cron == expr for t in spec.cron_triggers):
            return Transition(job_id=job.id, lease=job.lease, run_id=None)
        scheduled = datetime.fromtimestamp(job.run_at / 1000, UTC)
        fired = datetime.fromtimestamp(now / 1000, UTC)
        next_at = next_cron_ms(expr, max(now, job.run_at))
        scheduled_iso = scheduled.isoformat().replace("+00:00", "Z")
        internal = protocol.new_ulid(now)
        event = EventRecord(
            internal_id=internal,
            id=scheduled_iso,
            name=ev.SCHEDULED_TIMER,
            data={
                "cron": expr,
                "scheduledAt": scheduled_iso,
                "fireAt": fired.isoformat().replace("+00:00", "Z"),
            },
            user={},
            ts=now,
            v=None,
            received_at=now,
        )
        run = Scheduler.new_run(spec, event, now, cron=expr)
        return Transition(
            job_id=job.id,
            lease=job.lease,
            run_id=None,
            reschedule_at=next_at,
            ingest=Ingest(events=[event], runs=[run]),
        )


def next_cron_ms(expr: str, after_ms: int) -> int:
    """The first tick of ``expr`` strictly after ``after_ms``; ``TZ=Zone`` prefixes are honoured."""
    tz: Any = UTC
    text = expr.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        zone, _, text = text.partition(" ")
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(zone.split("=", 1)[1])
    if not croniter.is_valid(text.strip()):
        raise ValueError(f"invalid cron expression {expr!r}")
    base = datetime.fromtimestamp(after_ms / 1000, tz)
    nxt = croniter(text.strip(), base).get_next(datetime)
    return int(nxt.timestamp() * 1000)


def _step_name(op: GeneratorOp) -> str | None:
    """The user's name for a step: display name, else its raw id, else the op's name."""
    if op.display_name:
        return op.display_name
    if op.userland and isinstance(op.userland.get("id"), str):
        return str(op.userland["id"])
    return op.name


def _iso_ms(ms: int) -> str:
    return protocol.to_iso(datetime.fromtimestamp(ms / 1000, UTC))


def _standard_error(error: dict[str, Any]) -> dict[str, Any]:
    wire = WireError.from_wire(error).to_wire()
    wire.setdefault("error", f"{wire['name']}: {wire['message']}")
    return wire


def _sleep_until(op: GeneratorOp, now: int) -> int | None:
    opts = op.opts or {}
    text = opts.get("duration") if isinstance(opts.get("duration"), str) else op.name
    if not text:
        return None
    current = datetime.fromtimestamp(now / 1000, UTC)
    try:
        until = protocol.resolve_until(text, current)
    except (protocol.DurationError, OverflowError):
        return None
    until = min(until, current + MAX_SLEEP)
    return int(until.timestamp() * 1000)


def _parse_retry_after(value: str | None, now: int) -> int | None:
    if not value:
        return None
    value = value.strip()
    try:
        at = now + int(float(value) * 1000)
    except ValueError:
        try:
            at = int(protocol.parse_timestamp(value).timestamp() * 1000)
        except protocol.DurationError:
            return None
    return clamp_retry_after(now, at)


__all__ = ["Executor", "next_cron_ms", "now_ms"]
