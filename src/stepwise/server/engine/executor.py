"""Runs one leased job and turns what happened into one ``Transition``.

The executor never writes piecemeal: the memo of a step, the run's next job, any timer,
the run's final status and the events that report it all go into one transition, which
the store commits atomically (or drops whole if the job's lease was lost).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ... import protocol
from ...protocol import GeneratorOp, Opcode, OpParseError, sessions
from ...protocol import events as ev
from ...protocol import headers as h
from ..store.base import Store
from ..store.records import (
    DeferChange,
    EndpointRecord,
    EventRecord,
    HistoryEntry,
    HistoryKind,
    Ingest,
    Job,
    JobKind,
    NewJob,
    NewPause,
    Pause,
    PlannedStep,
    RunChange,
    RunState,
    RunStatus,
    RunUpdate,
    Settled,
    Transition,
)
from . import ai_gateway, defers, endpoints, lifecycle, metadata, pauses
from .backoff import parse_retry_after, retry_delay_ms
from .calls import next_call
from .cron import next_cron_ms
from .dispatch import queue_item_ref
from .driver import Driver, SdkReply, build_call_body
from .lifecycle import Failure
from .registry import FunctionSpec, Registry
from .scheduler import Scheduler
from .system_jobs import SystemJobs

log = logging.getLogger("stepwise.executor")

MAX_SLEEP = timedelta(days=366)
MAX_STEPS = 1000  # steps per run
MAX_STEP_OUTPUT = 4 * 1024 * 1024  # bytes of one step's output
MAX_RUN_STATE = 32 * 1024 * 1024  # bytes of all of a run's step results

# A reply of only empty ops re-drives discovery at most this many times in a row.
MAX_REDRIVES = 10

# Ops that ride along with others and have no job of their own: they never make a batch.
_LAZY_OPS = defers.DEFER_OPS

# SDKs that never checkpoint: a call of theirs adds no defer behind the executor's back.
_NO_CHECKPOINTS = ("inngest-py:",)

# Ops this server does not carry out; a step using one fails with a clear error.
_UNSUPPORTED_OPS = {Opcode.SYNC_RUN_COMPLETE}


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Outcome:
    """What one job's execution changes, accumulated, then frozen into a ``Transition``."""

    job: Job
    run_id: str
    now: int
    run_fields: dict[str, Any] = field(default_factory=dict)
    settled: list[Settled] = field(default_factory=list)
    planned: list[PlannedStep] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    jobs: list[NewJob] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    changes: list[RunChange] = field(default_factory=list)
    defers: list[DeferChange] = field(default_factory=list)

    def note(
        self,
        kind: HistoryKind,
        step_id: str | None = None,
        name: str | None = None,
        attempt: int | None = None,
        data: Any = None,
    ) -> None:
        self.history.append(HistoryEntry(kind, self.now, step_id, name, attempt, data))

    def entry(
        self,
        kind: HistoryKind,
        step_id: str,
        name: str | None,
        attempt: int | None = None,
        data: Any = None,
    ) -> HistoryEntry:
        return HistoryEntry(kind, self.now, step_id, name, attempt, data)

    def settle(self, step_id: str, memo: Any, *history: HistoryEntry) -> None:
        self.settled.append(Settled(step_id, memo, tuple(history)))

    def transition(self, **extra: Any) -> Transition:
        last = [*(s.step_id for s in self.settled), *self.abandoned]
        return Transition(
            job_id=self.job.id,
            lease=self.job.lease,
            run_id=self.run_id,
            settled=self.settled,
            planned=self.planned,
            abandoned=self.abandoned,
            continue_with=next_call(self.run_id, self.now, last[-1]) if last else None,
            new_jobs=self.jobs,
            run_update=RunUpdate(**self.run_fields) if self.run_fields else None,
            history=self.history,
            run_changes=self.changes,
            defers=self.defers,
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
        store: Store | None = None,
    ) -> None:
        self.registry = registry
        self.scheduler = scheduler
        self.driver = driver
        self.store = store
        self.retry_interval_s = retry_interval_s
        self.jobs = SystemJobs(
            store=store,
            registry=registry,
            scheduler=scheduler,
            driver=driver,
            retry_interval_s=retry_interval_s,
        )

    async def execute(self, job: Job, state: RunState | None) -> Transition:
        now = now_ms()
        if job.kind is JobKind.CRON:
            return self.jobs.cron_tick(job, now)
        if job.kind is JobKind.MATCH:
            return await self.jobs.match(job, now)
        if job.kind is JobKind.PAUSE_TIMEOUT:
            return await self.jobs.pause_timeout(job, now)
        if job.kind is JobKind.CANCEL_BULK:
            return await self.jobs.cancel_bulk(job, now)
        if job.kind is JobKind.DEBOUNCE:
            return await self.jobs.debounce(job, now)
        if job.kind is JobKind.BATCH:
            return self.jobs.batch(job, now)
        if state is None or state.run.status.terminal:
            return Transition(job_id=job.id, lease=job.lease, run_id=job.run_id)
        if job.kind is JobKind.WAKE:
            return self.jobs.wake(job, state, now)
        if job.kind is JobKind.RUN_TIMEOUT:
            return self.jobs.run_timeout(job, state, now)
        spec = self.registry.get(state.run.function_slug)
        endpoint: EndpointRecord | None = None
        if self.store is not None and (spec is None or endpoints.is_endpoint(spec)):
            # A durable endpoint's run: the server calls the handler's own URL.
            endpoint = await self.store.get_endpoint(state.run.id)
            if endpoint is not None:
                spec = endpoints.endpoint_spec(endpoint, spec, state.run)
            elif spec is not None:
                # A durable endpoint's function runs only from a request to its handler.
                failure = Failure.of_server(
                    "NotSupportedError", f"{spec.slug} is a durable endpoint: it has no run here"
                )
                return self._finish(_Outcome(job, state.run.id, now), state, failure=failure)
        if spec is None:
            failure = Failure.of_server(
                "Error", f"could not find function with ID: {state.run.function_slug}"
            )
            return self._finish(_Outcome(job, state.run.id, now), state, failure=failure)
        if job.kind is JobKind.GATEWAY:
            return await self.jobs.gateway(job, state, spec.max_attempts, now)
        if job.kind is JobKind.AI_GATEWAY:
            return await self.jobs.ai_gateway(job, state, spec.max_attempts, now)
        if state.state_bytes > MAX_RUN_STATE:
            failure = Failure.of_server(
                "StateTooLargeError",
                f"the run's step results take {state.state_bytes} bytes, over the {MAX_RUN_STATE}-byte limit",
            )
            return self._finish(_Outcome(job, state.run.id, now), state, failure=failure)
        if endpoint is not None:
            reply = await self.driver.reenter(
                endpoint,
                endpoints.request_body(state),
                run_id=state.run.id,
                step_id=job.step_id,
                request_version=state.run.request_version,
                job_id=queue_item_ref(job.id),
                generation=job.generation,
                force_step_plan=state.run.force_step_plan,
                function_slug=spec.slug,
            )
        else:
            body = build_call_body(
                state,
                step_id=job.step_id,
                attempt=job.attempt,
                max_attempts=spec.max_attempts,
                force_step_plan=state.run.force_step_plan,
                fn_id=spec.id,
                queue_item=queue_item_ref(job.id),
            )
            reply = await self.driver.call(
                spec.url,
                body,
                run_id=state.run.id,
                step_id=job.step_id,
                request_version=state.run.request_version,
                job_id=queue_item_ref(job.id),
                generation=job.generation,
                function_slug=spec.slug,
            )
        # A signal wait in "fail" mode fails the run if another run holds the signal; the
        # store refuses the pause if someone takes it between this read and the commit.
        owners: dict[str, Pause] = {}
        signal_wait = reply.status == 206 and b"WaitForSignal" in reply.raw
        if signal_wait and reply.signature_error is None:
            owners = await self.signal_owners(_ops_or_empty(reply.body), state.run.id)
        answered = now_ms()
        outcome = self.handle_reply(job, state, spec, reply, answered, signal_owners=owners)
        sdk = reply.header(h.SDK) or ""
        if (
            self.store is not None
            and job.step_id == "step"
            and not state.run.force_step_plan
            and not sdk.startswith(_NO_CHECKPOINTS)
        ):
            # A discovery call may have checkpointed steps and defers since the state was
            # read: the answer is applied with the steps and defers as they are now (the
            # step limit counts them; a run that ends starts the defers they added). The
            # run itself stays as dispatched: a checkpoint that started it does not arm
            # its finish timeout, the answer does. The call has answered, so nothing more
            # can come from it.
            fresh = (await self.store.load_run_states([state.run.id])).get(state.run.id)
            if (
                fresh is not None
                and not fresh.run.status.terminal  # ended meanwhile: the commit is refused
                and (len(fresh.steps) != len(state.steps) or fresh.defers != state.defers)
            ):
                state = dataclasses.replace(
                    state, steps=fresh.steps, state_bytes=fresh.state_bytes, defers=fresh.defers
                )
                outcome = self.handle_reply(job, state, spec, reply, answered, signal_owners=owners)
        return outcome

    def fail_after_faults(self, job: Job, state: RunState, message: str) -> Transition:
        """The server kept failing on this run's job: fail the run, visibly, with why."""
        failure = Failure.of_server("InternalServerError", message)
        return self._finish(_Outcome(job, state.run.id, now_ms()), state, failure=failure)

    async def signal_owners(self, ops: list[GeneratorOp], run_id: str) -> dict[str, Pause]:
        """The other runs that hold the signals these ops want to wait for."""
        owners: dict[str, Pause] = {}
        if self.store is None:
            return owners
        for op in ops:
            signal = (op.opts or {}).get("signal")
            if op.op is Opcode.WAIT_FOR_SIGNAL and isinstance(signal, str):
                owner = await self.store.pause_for_signal(signal)
                if owner is not None and owner.run_id != run_id:
                    owners[signal] = owner
        return owners

    def apply_ops(
        self,
        job: Job,
        state: RunState,
        spec: FunctionSpec,
        ops: list[GeneratorOp],
        now: int,
        body_bytes: int,
        signal_owners: dict[str, Pause],
    ) -> Transition:
        """``ops`` as the answer of ``job``'s call (a 206 with no retry headers): what a
        durable endpoint's checkpoint carries."""
        out = _Outcome(job, state.run.id, now)
        return self._apply_ops(out, state, spec, ops, False, None, signal_owners, body_bytes)

    # ---- replies ---------------------------------------------------------------
    def handle_reply(
        self,
        job: Job,
        state: RunState,
        spec: FunctionSpec,
        reply: SdkReply,
        now: int,
        *,
        signal_owners: dict[str, Pause] | None = None,
    ) -> Transition:
        run = state.run
        out = _Outcome(job, run.id, now)
        if reply.signature_error is not None:
            # Unproven replies change nothing: not the run's status, version, output or steps.
            failure = Failure.of_server("SignatureError", reply.signature_error)
            return self._fail_attempt(out, state, spec, failure, no_retry=False, retry_after=None)
        # The run has started once its app answered; an unreachable app has not started it.
        if run.status is RunStatus.SCHEDULED and reply.transport_error is None and reply.from_sdk:
            out.run_fields.update(status=RunStatus.RUNNING, started_at=now)
            out.note(HistoryKind.RUN_STARTED)
            finish = (spec.record.config.get("timeouts") or {}).get("finish")
            if isinstance(finish, str) and finish:
                try:
                    at = now + int(protocol.parse_duration(finish).total_seconds() * 1000)
                except protocol.DurationError:
                    log.warning("function %s has an invalid finish timeout %r", spec.slug, finish)
                else:
                    out.jobs.append(
                        NewJob(
                            run_id=run.id,
                            kind=JobKind.RUN_TIMEOUT,
                            run_at=at,
                            key=f"timeout:finish:{run.id}",
                            payload={"which": "finish", "timeout": finish},
                        )
                    )
        version = reply.header(h.REQ_VERSION)
        if run.request_version == -1 and version is not None and version.lstrip("-").isdigit():
            out.run_fields["request_version"] = int(version)

        if reply.transport_error is not None:
            failure = Failure.of_server(
                "Error", f"could not reach the app: {reply.transport_error}"
            )
            return self._fail_attempt(out, state, spec, failure, no_retry=False, retry_after=None)
        if 200 <= reply.status < 300 and not reply.from_sdk:
            failure = Failure.of_server(
                "Error",
                "the response did not come from an Inngest SDK (no X-Inngest-SDK header)",
            )
            return self._fail_attempt(out, state, spec, failure, no_retry=False, retry_after=None)
        no_retry = (reply.header(h.NO_RETRY) or "").strip().lower() == "true"
        retry_after = parse_retry_after(reply.header(h.RETRY_AFTER), now)

        if reply.status == 200:
            return self._finish(out, state, output=(reply.body,))
        if reply.status == 206:
            try:
                ops = protocol.parse_ops(reply.body)
            except OpParseError as exc:
                failure = Failure.of_server("Error", f"unreadable response from the SDK: {exc}")
                return self._fail_attempt(
                    out, state, spec, failure, no_retry=False, retry_after=None
                )
            return self._apply_ops(
                out, state, spec, ops, no_retry, retry_after, signal_owners or {}, len(reply.raw)
            )
        failure = Failure.of_reply(
            reply.status, reply.body, reply.raw, from_sdk=reply.from_sdk, no_retry=no_retry
        )
        return self._fail_attempt(
            out, state, spec, failure, no_retry=no_retry, retry_after=retry_after
        )

    def _apply_ops(
        self,
        out: _Outcome,
        state: RunState,
        spec: FunctionSpec,
        ops: list[GeneratorOp],
        no_retry: bool,
        retry_after: int | None,
        signal_owners: dict[str, Pause],
        body_bytes: int,
    ) -> Transition:
        job, run_id, now = out.job, out.run_id, out.now
        retry_at: int | None = None
        complete: tuple[Any] | None = None
        real_ops = [op for op in ops if op.op is not Opcode.NONE]
        if ops and not real_ops and all(not op.id for op in ops):
            # Only empty "None" ops: the reply neither advances nor ends the run.
            return self._redrive(out, state)
        known = {m.step_id for m in state.steps}
        # RunComplete ends the run: it is no step (a run of exactly MAX_STEPS steps that
        # ends with it, as a checkpointing SDK's does, is within the limit).
        new_steps = sum(
            1
            for op in real_ops
            if op.id not in known and op.op not in _LAZY_OPS and op.op is not Opcode.RUN_COMPLETE
        )
        if len(state.steps) + new_steps > MAX_STEPS:
            failure = Failure.of_server(
                "StepLimitExceededError", f"the run has more than {MAX_STEPS} steps"
            )
            return self._finish(out, state, failure=failure)
        parallel = sum(1 for op in real_ops if op.op not in _LAZY_OPS) > 1
        if parallel and not state.run.force_step_plan:
            # Parallel steps: from now on every step must be planned, not run inline.
            out.run_fields["force_step_plan"] = True
        version = out.run_fields.get("request_version", state.run.request_version)
        trigger = state.events[0].to_wire() if state.events else {}
        # Waits first, as the reference orders them: their pauses exist before anything resumes.
        for op in sorted(real_ops, key=lambda o: o.op is not Opcode.WAIT_FOR_EVENT):
            name = step_name(op)
            if op.op in _LAZY_OPS:
                self._defer(out, op, name)
                continue
            if op.id == protocol.RUN_COMPLETE_ID and op.op in (
                Opcode.STEP_ERROR,
                Opcode.STEP_FAILED,
            ):
                # The function itself threw (the SDK answers so when defers ride along).
                final = op.op is Opcode.STEP_FAILED
                failure = Failure.of_reply(
                    400 if final else 500, op.error, b"", from_sdk=True, no_retry=final
                )
                return self._fail_attempt(
                    out, state, spec, failure, no_retry=final or no_retry, retry_after=retry_after
                )
            race = (op.opts or {}).get("parallelMode") == "race"
            # Request version 1 (JS v3) calls the SDK after every step of a batch.
            batch = parallel and not race and version != 1

            def planned(
                *history: HistoryEntry,
                jobs: tuple[NewJob, ...] = (),
                pause: NewPause | None = None,
                ingest: Ingest | None = None,
                op: GeneratorOp = op,
                batch: bool = batch,
                race: bool = race,
            ) -> None:
                out.planned.append(
                    PlannedStep(op.id, jobs, pause, ingest, tuple(history), batch, race)
                )

            def fail_step(
                error: dict[str, Any],
                op: GeneratorOp = op,
                name: str | None = name,
            ) -> None:
                # Only a step.run result has an attempt: other ops fail before anything runs.
                attempt = job.attempt if op.op in (Opcode.STEP_ERROR, Opcode.STEP_FAILED) else None
                entry = out.entry(HistoryKind.STEP_FAILED, op.id, name, attempt, {"error": error})
                out.settle(op.id, {"error": error}, entry, *metadata.of_op(op, now, name, attempt))

            if op.op in (Opcode.STEP_RUN, Opcode.STEP):
                if body_bytes > MAX_STEP_OUTPUT and len(protocol.dumps(op.data)) > MAX_STEP_OUTPUT:
                    fail_step(
                        {
                            "name": "OutputTooLargeError",
                            "message": f"step output is over {MAX_STEP_OUTPUT} bytes",
                        }
                    )
                    continue
                memo = {"data": op.data} if op.op is Opcode.STEP_RUN else op.data
                entry = out.entry(
                    HistoryKind.STEP_COMPLETED, op.id, name, job.attempt, step_input(op)
                )
                out.settle(op.id, memo, entry, *metadata.of_op(op, now, name, job.attempt))
            elif op.op is Opcode.STEP_ERROR:
                error = lifecycle.step_error(op.error)
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
                    out.history.extend(metadata.of_op(op, now, name, job.attempt))
                else:
                    fail_step(error)
            elif op.op is Opcode.STEP_FAILED:
                fail_step(lifecycle.step_error(op.error))
            elif op.op is Opcode.STEP_PLANNED:
                call = NewJob(
                    run_id=run_id,
                    kind=JobKind.CALL,
                    run_at=now,
                    step_id=op.id,
                    key=f"step:{run_id}:{op.id}",
                    payload={"race": True} if race else None,
                )
                entry = out.entry(HistoryKind.STEP_PLANNED, op.id, name, None, step_input(op))
                planned(entry, jobs=(call,))
            elif op.op is Opcode.SLEEP:
                wake = _sleep_until(op, now)
                if wake is None:
                    fail_step({"name": "Error", "message": f"invalid sleep duration {op.name!r}"})
                    continue
                alarm = NewJob(
                    run_id=run_id,
                    kind=JobKind.WAKE,
                    run_at=wake,
                    step_id=op.id,
                    key=f"wake:{run_id}:{op.id}",
                    payload={"name": name},
                )
                entry = out.entry(
                    HistoryKind.SLEEP_STARTED, op.id, name, None, {"until": _iso_ms(wake)}
                )
                planned(entry, jobs=(alarm,))
            elif op.op is Opcode.WAIT_FOR_EVENT:
                try:
                    wait = pauses.wait_for_event(run_id, op, name, trigger, now)
                except pauses.PauseError as exc:
                    fail_step({"name": "Error", "message": f"cannot wait for an event: {exc}"})
                    continue
                planned(
                    *_pause_history(out, wait, HistoryKind.WAIT_STARTED, op, name),
                    **_pause_parts(wait),
                )
            elif op.op is Opcode.WAIT_FOR_SIGNAL:
                try:
                    wait = pauses.wait_for_signal(run_id, op, name, now)
                except pauses.PauseError as exc:
                    fail_step({"name": "Error", "message": f"cannot wait for a signal: {exc}"})
                    continue
                signal = wait.pause.signal or ""
                if signal in signal_owners and not wait.pause.steal_signal:
                    # The reference fails the whole run here, not just the step.
                    failure = Failure.of_server(
                        "Error", "Signal conflict; signal wait already exists for another run"
                    )
                    return self._finish(out, state, failure=failure)
                planned(
                    *_pause_history(out, wait, HistoryKind.WAIT_STARTED, op, name),
                    **_pause_parts(wait),
                )
            elif op.op is Opcode.INVOKE_FUNCTION:
                invoke_error = self._invoke(out, state, op, name, planned)
                if invoke_error is not None:
                    fail_step(invoke_error)
            elif op.op is Opcode.GATEWAY:
                fetch = _request_job(JobKind.GATEWAY, run_id, op.id, now, op.opts or {}, name)
                shown: dict[str, Any] = {"fetch": _fetch_shown(op.opts or {})}
                entry = out.entry(HistoryKind.STEP_PLANNED, op.id, name, None, shown)
                planned(entry, jobs=(fetch,))
            elif op.op is Opcode.AI_GATEWAY:
                try:
                    options = ai_gateway.parse_options(op.opts)
                except ai_gateway.InvalidOptions as exc:
                    fail_step({"name": ai_gateway.ERROR_NAME, "message": str(exc)})
                    continue
                # The only copy of the key the server keeps: the job row, deleted when
                # its outcome commits. The history gets the request redacted.
                infer = _request_job(
                    JobKind.AI_GATEWAY, run_id, op.id, now, options.model_dump(), name
                )
                request = {"type": options.type, "request": ai_gateway.redacted(options)}
                entry = out.entry(HistoryKind.STEP_PLANNED, op.id, name, None, request)
                planned(entry, jobs=(infer,))
            elif op.op is Opcode.RUN_COMPLETE:
                complete = (op.data,)
            elif op.op is Opcode.DISCOVERY_REQUEST:
                out.jobs.append(next_call(run_id, now, op.id or f"request:{job.id}"))
            elif op.op in _UNSUPPORTED_OPS:
                fail_step(
                    {
                        "name": "NotSupportedError",
                        "message": f"{op.op.value} is not supported by this server",
                    }
                )
        if complete is not None:
            return self._finish(out, state, output=complete)
        if retry_at is not None and not out.settled and not out.planned and not out.jobs:
            return out.transition(retry_at=retry_at)
        if real_ops and all(op.op in _LAZY_OPS for op in real_ops) and job.step_id == "step":
            # Defers never travel alone; an SDK that sends only them gets called again.
            out.jobs.append(next_call(run_id, now, f"lazy:{job.id}"))
        if job.step_id != "step" and all(s.step_id != job.step_id for s in out.settled):
            # A targeted call that did not settle its step: the app no longer has it there
            # (a parallel step that disappeared). The run goes on with a discovery call,
            # which lets the SDK decide, instead of waiting for it forever.
            out.abandoned.append(job.step_id)
        return out.transition()

    @staticmethod
    def _defer(out: _Outcome, op: GeneratorOp, name: str | None) -> None:
        """A ``DeferAdd`` or ``DeferAbort``: stored with the rest of the answer."""
        try:
            out.defers.append(defers.change_of(op, out.now))
        except defers.InvalidDefer as exc:
            out.note(HistoryKind.DEFER_REJECTED, op.id or None, name, None, {"reason": str(exc)})

    def _redrive(self, out: _Outcome, state: RunState) -> Transition:
        """Call the SDK again after a reply of only empty ops, a bounded number of times."""
        count = int((out.job.payload or {}).get("redrive", 0)) + 1
        if count > MAX_REDRIVES:
            failure = Failure.of_server(
                "Error", f"the SDK answered {count} calls in a row with no ops to run"
            )
            return self._finish(out, state, failure=failure)
        out.jobs.append(
            NewJob(
                run_id=out.run_id,
                kind=JobKind.CALL,
                run_at=out.now,
                key=f"discovery:{out.run_id}:redrive:{out.job.id}",
                payload={"redrive": count},
            )
        )
        return out.transition()

    def _invoke(
        self,
        out: _Outcome,
        state: RunState,
        op: GeneratorOp,
        name: str | None,
        planned: Any,
    ) -> dict[str, Any] | None:
        """Start a child run and pause until its ``function.finished``; or an error for the step."""
        opts = op.opts or {}
        function_id = opts.get("function_id")
        raw_payload = opts.get("payload")
        payload: dict[str, Any] = raw_payload if isinstance(raw_payload, dict) else {}
        if not isinstance(function_id, str) or not function_id:
            return {"name": "Error", "message": "InvokeFunction needs opts.function_id"}
        target = self.registry.get(function_id)
        if target is None:
            return {"name": "Error", "message": f"could not find function with ID: {function_id}"}
        if endpoints.is_endpoint(target):
            return {
                "name": "Error",
                "message": f"{function_id} is a durable endpoint: invoke it"
                " with a request to its handler",
            }
        now, run_id = out.now, state.run.id
        try:
            expires = pauses.expiry(opts.get("timeout"), now, default=pauses.MAX_WAIT)
        except pauses.PauseError as exc:
            return {"name": "Error", "message": str(exc)}
        try:
            # The invoked run's sessions: the invoke's own, then those of this run.
            meta = sessions.resolve_meta(payload.get("meta"))
        except sessions.SessionError as exc:
            return {"name": "Error", "message": f"invalid invoke meta: {exc}"}
        correlation_id = f"{run_id}.{op.id}"
        data = dict(payload.get("data") or {}) if isinstance(payload.get("data"), dict) else {}
        data["_inngest"] = {
            **ev.trace_fields(data.get("_inngest")),
            "fn_id": function_id,
            "correlation_id": correlation_id,
            "source_fn_id": state.run.function_slug,
            "source_run_id": run_id,
            "expire": expires,
            "name": name,
        }
        internal = protocol.new_ulid(now)
        user_id = payload.get("id")
        invoked = EventRecord(
            internal_id=internal,
            id=user_id if isinstance(user_id, str) and user_id else internal,
            name=ev.FUNCTION_INVOKED,
            data=data,
            user={},
            ts=now,
            v=payload.get("v") if isinstance(payload.get("v"), str) else None,
            received_at=now,
            meta=meta,
        )
        # Keyed by the correlation id: a re-executed invoke starts the child once.
        child = Scheduler.new_run(
            target, invoked, now, correlation_id=correlation_id, idempotency_key=correlation_id
        )
        wait = pauses.invoke_pause(run_id, op, name, correlation_id, expires, now)
        entry = out.entry(
            HistoryKind.INVOKE_STARTED,
            op.id,
            name,
            None,
            {"function_id": function_id, "run_id": child.id},
        )
        planned(entry, ingest=Ingest(events=[invoked], runs=[child]), **_pause_parts(wait))
        return None

    def _fail_attempt(
        self,
        out: _Outcome,
        state: RunState,
        spec: FunctionSpec,
        failure: Failure,
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
                failure.event_error.get("message"),
            )
            out.note(
                HistoryKind.ATTEMPT_FAILED,
                None,
                None,
                job.attempt,
                {"error": failure.output, "retry_at": at},
            )
            return out.transition(retry_at=at)
        return self._finish(out, state, failure=failure)

    # ---- ends of runs ------------------------------------------------------------
    def _finish(
        self,
        out: _Outcome,
        state: RunState,
        *,
        output: tuple[Any] | None = None,
        failure: Failure | None = None,
    ) -> Transition:
        now = out.now
        fields = out.run_fields
        # A run that ends plans nothing more; what settled with the end is still kept.
        out.planned.clear()
        out.abandoned.clear()
        error: dict[str, Any] | None = None
        if failure is not None:
            error = failure.event_error
            status = RunStatus.FAILED
            fields.update(status=status, error=error, output=failure.output, has_output=True)
            ending = HistoryEntry(
                HistoryKind.RUN_FAILED, now, None, None, out.job.attempt, {"error": failure.output}
            )
        else:
            status = RunStatus.COMPLETED
            fields.update(status=status, output=output[0] if output else None, has_output=True)
            ending = HistoryEntry(HistoryKind.RUN_COMPLETED, now)
        fields["ended_at"] = now
        fields.setdefault("started_at", now)
        # Completed or failed, the run starts its deferred runs as it ends.
        deferred, told = defers.deferred_events(
            state.run, defers.applied(state.defers, out.defers), now
        )
        events: list[EventRecord] = []
        if lifecycle.reports_its_end(state):
            if failure is not None:
                output = (failure.output,)
            events = lifecycle.end_events(
                state.run, state.events, now, status, output=output, error=error
            )
        events += deferred
        ingest = self.scheduler.plan(events, now) if events else None
        return out.transition(clear_run_jobs=True, ending=ending, ending_notes=told, ingest=ingest)


def _request_job(
    kind: JobKind, run_id: str, step_id: str, now: int, opts: dict[str, Any], name: str | None
) -> NewJob:
    """A job, due now, in which the server makes a step's request (a fetch, a model call)."""
    return NewJob(
        run_id=run_id,
        kind=kind,
        run_at=now,
        step_id=step_id,
        key=f"{kind.value}:{run_id}:{step_id}",
        payload={"opts": opts, "name": name},
    )


def _pause_parts(wait: pauses.PlannedPause) -> dict[str, Any]:
    jobs = (wait.timeout_job,) if wait.timeout_job is not None else ()
    return {"pause": wait.pause, "jobs": jobs}


def _pause_history(
    out: _Outcome,
    wait: pauses.PlannedPause,
    kind: HistoryKind,
    op: GeneratorOp,
    name: str | None,
) -> tuple[HistoryEntry]:
    until = wait.pause.expires_at
    data: dict[str, Any] = {"until": _iso_ms(until)} if until is not None else {}
    # What it waits for, as the run's page shows it: the event (and its condition) or signal.
    if wait.pause.signal:
        data["signal"] = wait.pause.signal
    elif wait.pause.event_name:
        data["event"] = wait.pause.event_name
        condition = (op.opts or {}).get("if")
        if isinstance(condition, str) and condition:
            data["if"] = condition
    return (out.entry(kind, op.id, name, None, data or None),)


def _fetch_shown(opts: dict[str, Any]) -> dict[str, Any]:
    """A ``step.fetch`` request as its history keeps it: method and URL, without the URL's
    query or credentials, which may hold secrets; its headers and body are not kept."""
    method = opts.get("method")
    shown: dict[str, Any] = {"method": method.upper() if isinstance(method, str) else "GET"}
    url = opts.get("url")
    if isinstance(url, str):
        try:
            parts = urlsplit(url)
        except ValueError:  # the request fails on it; the page still says what it was
            shown["url"] = "(not a URL)"
        else:
            netloc = parts.netloc.rpartition("@")[2]
            shown["url"] = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return shown


def step_name(op: GeneratorOp) -> str | None:
    """The user's name for a step: display name, else its raw id, else the op's name."""
    if op.display_name:
        return op.display_name
    if op.userland and isinstance(op.userland.get("id"), str):
        return str(op.userland["id"])
    return op.name


def step_input(op: GeneratorOp) -> dict[str, Any] | None:
    """What a step's history keeps of its arguments, when its SDK sends them (``opts.input``:
    the JS SDK's ``step.run`` arguments, either SDK's ``step.ai.wrap``), the values of
    arguments named like credentials hidden; most steps have none."""
    opts = op.opts or {}
    given = opts.get("input")
    if opts.get("type") == "step.ai.wrap":
        return {"type": "step.ai.wrap", "input": ai_gateway.redact_input(given)}
    if isinstance(given, list) and given:
        return {"input": ai_gateway.redact_input(given)}
    return None


def _iso_ms(ms: int) -> str:
    return protocol.to_iso(datetime.fromtimestamp(ms / 1000, UTC))


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


def _ops_or_empty(body: Any) -> list[GeneratorOp]:
    try:
        return protocol.parse_ops(body)
    except OpParseError:
        return []


__all__ = ["Executor", "next_cron_ms", "now_ms"]
