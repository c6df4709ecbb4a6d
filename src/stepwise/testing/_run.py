"""One run driven in virtual time, the way the server drives it, with no server.

The loop plays the server's part: it builds each call request, runs it through the SDK's
own ``Execution`` (``TestExecution``), and applies the reply as the executor does — step
results, retries of the same call with ``attempt`` advancing, planned steps, sleeps,
waits, invokes, ``step.fetch`` and ``step.ai`` — then commits it in the store's order
(notes, results, plans, the next call by the fan-in rule). The decisions that are plain
functions on the server are the server's own here: ``flow.fanin`` (when the run goes on),
``engine.pauses`` (wait conditions, expiries, memos), ``engine.backoff`` (retry delays),
``engine.lifecycle`` (failure shapes). Jobs wait in a heap keyed by virtual time, so a
run that sleeps for days ends at once; at any instant, calls go first, then events that
arrive, then timers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import NonRetriableError
from ..protocol import (
    REQUEST_VERSION,
    DurationError,
    GeneratorOp,
    Opcode,
    dumps,
    loads,
    new_ulid,
    parse_ops,
    parse_timestamp,
    resolve_until,
    to_iso,
)
from ..protocol import events as ev
from ..sdk.call import CallRequest
from ..sdk.client import Stepwise
from ..sdk.event import Event, EventLike, events_for_sending
from ..sdk.execution import StepCall
from ..sdk.function import Function
from ..sdk.options import Duration, duration_to_delta
from ..server.engine import lifecycle, pauses
from ..server.engine.backoff import clamp_retry_after, retry_delay_ms
from ..server.engine.executor import MAX_SLEEP, MAX_STEP_OUTPUT, MAX_STEPS, step_name
from ..server.engine.lifecycle import Failure
from ..server.store.records import EventRecord, HistoryKind, NewPause, PauseKind
from ._execution import StepBody, TestExecution, ToolCall
from ._records import RunRecords, StepInfo, dt, error_from
from ._state import Plan, RunStore, Transition, as_pause
from ._timeline import Job, JobKind, Timeline
from .mocks import (
    KIND_OF_OP,
    TIMEOUT,
    Arrival,
    Mocks,
    StepRequest,
    answer,
    as_json,
    error_of,
    fetch_memo,
    invoke_memo,
    signal_memo,
    wait_memo,
)
from .results import (
    RunCancelledError,
    RunResult,
    RunState,
    RunStatus,
    SleepRecord,
    UnmockedStepError,
)

MAX_REQUESTS = 10_000
"""Calls of one run before the engine gives up on a function that never ends."""
_MAX_REDRIVES = 10
_LAZY_OPS = {Opcode.DEFER_ADD, Opcode.DEFER_ABORT}
_UNSUPPORTED_OPS = {Opcode.DEFER_ADD, Opcode.DEFER_ABORT, Opcode.SYNC_RUN_COMPLETE}


def _delta_ms(duration: Duration | None, what: str) -> int:
    if duration is None:
        return 0
    return int(duration_to_delta(duration, what=what).total_seconds() * 1000)


class _RecordingClient(Stepwise):
    """The client step tools use: ``send`` records events instead of sending them."""

    def __init__(self, app_id: str, on_send: Callable[[list[dict[str, Any]]], list[str]]) -> None:
        super().__init__(
            app_id,
            is_production=False,
            event_key="test",
            api_base_url="http://stepwise.invalid",
            event_api_base_url="http://stepwise.invalid",
        )
        self._on_send = on_send

    async def send(self, events: EventLike | Sequence[EventLike]) -> list[str]:
        return self._on_send(events_for_sending(events))


class RunDriver:
    """Drives one run of ``function`` to its end (or to ``stop_at``) in virtual time."""

    def __init__(
        self,
        *,
        function: Function,
        mocks: Mocks,
        events: list[dict[str, Any]],
        functions: Mapping[str, Function],
        created_at: int,
        retry_interval_s: float | None,
        start_delay: Duration = 0,
        arrivals: Sequence[Arrival] = (),
        stop_at: str | None = None,
    ) -> None:
        self.function = function
        self.mocks = mocks
        self.functions = functions
        self.retry_interval_s = retry_interval_s
        self.stop_at = stop_at
        self.run_id = new_ulid(created_at)
        self.created_at = self.now = created_at
        self.events = [self._stored_event(e) for e in events]
        self.status: RunStatus = "Running"
        self.started_at: int | None = None
        self.ended_at: int | None = None
        self.result: Any = None
        self.output: Any = None
        self.error: BaseException | None = None
        self.failure: Failure | None = None
        self.records = RunRecords(lambda: self.now)
        self.requests = 0
        self.client = _RecordingClient(function.app_id, self.records.sent)
        self.timeline = Timeline()
        self.store = RunStore(self.records, self.timeline, lambda: self.now)
        self._after_step: dict[str, list[Arrival]] = {}
        self._stopped = False
        self._start(start_delay, arrivals)

    # ---- setup -------------------------------------------------------------------------

    def _stored_event(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A triggering event as the server stores and sends it."""
        return ev.event_to_wire(
            name=str(raw.get("name") or ""),
            data=dict(raw.get("data") or {}),
            id=str(raw.get("id") or new_ulid(self.created_at)),
            ts=int(raw.get("ts") or self.created_at),
            user=dict(raw.get("user") or {}),
            v=raw.get("v") if isinstance(raw.get("v"), str) else None,
        )

    def _start(self, start_delay: Duration, arrivals: Sequence[Arrival]) -> None:
        now = self.now
        options = self.function.options
        if options.cancel_on:
            cancels = [c.to_wire() for c in options.cancel_on]
            for pause in pauses.cancel_pauses(self.run_id, cancels, self.events[0], now):
                self.store.pauses[pause.key] = pause
        timeouts = options.timeouts.to_wire() if options.timeouts is not None else {}
        if "start" in timeouts:
            at = now + _delta_ms(timeouts["start"], "timeouts start")
            self.timeline.schedule(JobKind.RUN_TIMEOUT, at, payload={"which": "start", **timeouts})
        self.timeline.schedule(JobKind.CALL, now + _delta_ms(start_delay, "start_delay"))
        for arrival in arrivals:
            if arrival.after_step is not None:
                self._after_step.setdefault(arrival.after_step, []).append(arrival)
            else:
                self.timeline.schedule(
                    JobKind.ARRIVAL,
                    now + _delta_ms(arrival.at, "arrival"),
                    payload={"event": arrival.event},
                )

    # ---- the loop ----------------------------------------------------------------------

    async def run(self) -> RunResult:
        while self.status == "Running" and not self._stopped:
            job = self.timeline.pop()
            if job is None:
                raise RuntimeError(
                    f"run {self.run_id} of {self.function.id} has nothing left to do but has "
                    "not ended (a bug in the test engine)"
                )
            self.now = max(self.now, job.at)
            await self._dispatch(job)
        return self.report()

    async def _dispatch(self, job: Job) -> None:
        if job.kind is JobKind.CALL:
            await self._call(job)
        elif job.kind is JobKind.RESOLVE:
            await self._resolve(job)
        elif job.kind is JobKind.GATEWAY:
            await self._gateway(job)
        elif job.kind is JobKind.WAKE:
            name = job.payload.get("name")
            entry = self.records.entry(HistoryKind.SLEEP_ENDED, job.step_id, name)
            self._commit(job, Transition(settled=[(job.step_id, None, [entry])]))
        elif job.kind is JobKind.PAUSE_TIMEOUT:
            pause = self.store.pauses.get(str(job.payload["pause"]))
            if pause is not None:
                self._resume(pause, pauses.memo_for_timeout(as_pause(pause)), timed_out=True)
        elif job.kind is JobKind.RUN_TIMEOUT:
            which = job.payload["which"]
            if which == "start" and self.started_at is not None:
                return
            verb = "start" if which == "start" else "finish"
            self._cancel(f"the run did not {verb} within its {job.payload[which]} timeout")
        elif job.kind is JobKind.ARRIVAL:
            self._arrive(job.payload["event"])

    def _commit(self, job: Job | None, t: Transition) -> None:
        for step_id in self.store.commit(job, t, going_on=self.status == "Running"):
            self._after_settle(step_id)

    # ---- calls -------------------------------------------------------------------------

    def _call_request(self, job: Job) -> CallRequest:
        body = {
            "event": self.events[0],
            "events": self.events,
            "steps": self.store.memos,
            "ctx": {
                "run_id": self.run_id,
                "env": "",
                "step_id": "step",
                "attempt": job.attempt,
                "max_attempts": self.function.max_attempts,
                "stack": {"stack": self.store.stack, "current": len(self.store.stack)},
                "disable_immediate_execution": self.store.force_step_plan,
                "use_api": False,
            },
            "version": REQUEST_VERSION,
            "use_api": False,
        }
        # Through JSON, as on the wire: user code that changes a result it got back
        # cannot change what the next call replays.
        return CallRequest.parse(loads(dumps(body)))

    async def _call(self, job: Job) -> None:
        self.requests += 1
        if self.requests > MAX_REQUESTS:
            raise RuntimeError(
                f"{self.function.id} was called {MAX_REQUESTS} times and never ended"
            )
        execution = TestExecution(
            hooks=self,
            client=self.client,
            function=self.function,
            request=self._call_request(job),
            target_step=None if job.step_id == "step" else job.step_id,
        )
        result = await execution.run()
        t = Transition()
        if self.started_at is None:
            self._mark_started(t)
        retry_after = None
        if result.retry_at is not None:
            wait = int((result.retry_at - datetime.now(UTC)).total_seconds() * 1000)
            retry_after = clamp_retry_after(self.now, self.now + wait)
        if result.status == 200:
            self._commit(job, t)
            self._finish(job, output=loads(result.body))
        elif result.status == 206:
            ops = parse_ops(loads(result.body))
            self._apply_ops(job, t, ops, execution, retry_after, no_retry=result.no_retry)
        else:
            body = loads(result.body) if result.body else None
            failure = Failure.of_reply(
                result.status, body, result.body, from_sdk=True, no_retry=result.no_retry
            )
            error = execution.function_error or error_from(failure.output)
            self._fail_attempt(job, t, failure, error, no_retry=result.no_retry, at=retry_after)

    def _mark_started(self, t: Transition) -> None:
        self.started_at = self.now
        t.notes.append(self.records.entry(HistoryKind.RUN_STARTED))
        timeouts = self.function.options.timeouts
        finish = timeouts.to_wire().get("finish") if timeouts is not None else None
        if finish:
            at = self.now + _delta_ms(finish, "timeouts finish")
            self.timeline.schedule(
                JobKind.RUN_TIMEOUT, at, payload={"which": "finish", "finish": finish}
            )

    def _fail_attempt(
        self,
        job: Job,
        t: Transition,
        failure: Failure,
        error: BaseException,
        *,
        no_retry: bool,
        at: int | None,
    ) -> None:
        if not no_retry and job.attempt + 1 < self.function.max_attempts:
            retry_at = at if at is not None else self._backoff(job.attempt)
            data = {"error": failure.output, "retry_at": retry_at}
            t.notes.append(
                self.records.entry(HistoryKind.ATTEMPT_FAILED, attempt=job.attempt, data=data)
            )
            t.retry_at = retry_at
            self._commit(job, t)
            return
        self._commit(job, t)
        self.error = error
        self._finish(job, failure=failure)

    def _backoff(self, attempt: int) -> int:
        return self.now + retry_delay_ms(attempt, self.retry_interval_s)

    # ---- replies -----------------------------------------------------------------------

    def _apply_ops(
        self,
        job: Job,
        t: Transition,
        ops: list[GeneratorOp],
        execution: TestExecution,
        retry_after: int | None,
        *,
        no_retry: bool,
    ) -> None:
        real_ops = [op for op in ops if op.op is not Opcode.NONE]
        if ops and not real_ops and all(not op.id for op in ops):
            count = int(job.payload.get("redrive", 0)) + 1
            if count > _MAX_REDRIVES:
                raise RuntimeError(f"{self.function.id} answered {count} calls with no ops")
            t.jobs.append(self.timeline.job(JobKind.CALL, self.now, payload={"redrive": count}))
            self._commit(job, t)
            return
        new_steps = sum(1 for op in real_ops if op.id not in self.store.memos)
        if len(self.store.memos) + new_steps > MAX_STEPS:
            self._commit(job, t)
            message = f"the run has more than {MAX_STEPS} steps"
            self.error = error_from({"name": "StepLimitExceededError", "message": message})
            self._finish(job, failure=Failure.of_server("StepLimitExceededError", message))
            return
        parallel = sum(1 for op in real_ops if op.op not in _LAZY_OPS) > 1
        if parallel:
            self.store.force_step_plan = True
        retry_at: int | None = None
        complete: tuple[Any] | None = None
        for op in sorted(real_ops, key=lambda o: o.op is not Opcode.WAIT_FOR_EVENT):
            race = (op.opts or {}).get("parallelMode") == "race"
            batch = parallel and not race
            tool = execution.tool_calls.get(op.id)
            info = self._note_step(op, tool)
            if op.op in (Opcode.STEP_RUN, Opcode.STEP):
                if len(dumps(op.data)) > MAX_STEP_OUTPUT:
                    message = f"step output is over {MAX_STEP_OUTPUT} bytes"
                    error = {"name": "OutputTooLargeError", "message": message}
                    self._fail_step(t, op, info, error, job.attempt)
                    continue
                memo = {"data": op.data} if op.op is Opcode.STEP_RUN else op.data
                entry = self.records.entry(
                    HistoryKind.STEP_COMPLETED, op.id, info.user_id, job.attempt
                )
                t.settled.append((op.id, memo, [entry]))
            elif op.op is Opcode.STEP_ERROR:
                error = lifecycle.step_error(op.error)
                if not no_retry and job.attempt + 1 < self.function.max_attempts:
                    retry_at = (
                        retry_after if retry_after is not None else self._backoff(job.attempt)
                    )
                    data = {"error": error, "retry_at": retry_at}
                    t.notes.append(
                        self.records.entry(
                            HistoryKind.STEP_ERRORED, op.id, info.user_id, job.attempt, data
                        )
                    )
                else:
                    self._fail_step(t, op, info, error, job.attempt)
            elif op.op is Opcode.STEP_FAILED:
                self._fail_step(t, op, info, lifecycle.step_error(op.error), job.attempt)
            elif op.op is Opcode.STEP_PLANNED:
                call = self.timeline.job(
                    JobKind.CALL,
                    self.now,
                    step_id=op.id,
                    key=f"step:{op.id}",
                    payload={"race": True} if race else None,
                )
                entry = self.records.entry(HistoryKind.STEP_PLANNED, op.id, info.user_id)
                t.planned.append(Plan(op.id, batch, race, [call], history=[entry]))
            elif op.op is Opcode.RUN_COMPLETE:
                complete = (op.data,)
            elif op.op is Opcode.DISCOVERY_REQUEST:
                t.jobs.append(self.store.discovery(op.id or f"request:{self.requests}"))
            elif op.op in _UNSUPPORTED_OPS:
                error = {"name": "NotSupportedError", "message": f"{op.op.value} is not supported"}
                self._fail_step(t, op, info, error, None)
            else:
                self._plan_waiting_step(t, op, info, tool, batch, race)
        if complete is not None:
            self._commit(job, t)
            self._finish(job, output=complete[0])
            return
        if retry_at is not None and not t.settled and not t.planned and not t.jobs:
            t.retry_at = retry_at
        elif job.step_id != "step" and all(s[0] != job.step_id for s in t.settled):
            # A targeted call that did not settle its step: go on with a discovery call.
            t.abandoned.append(job.step_id)
        self._commit(job, t)

    def _note_step(self, op: GeneratorOp, tool: ToolCall | None) -> StepInfo:
        info = self.records.info.get(op.id)
        if info is None:
            user_id = step_name(op) or op.id
            kind = tool.tool if tool is not None else KIND_OF_OP.get(op.op, "run")
            index = (op.userland or {}).get("index", 0)
            info = self.records.info[op.id] = StepInfo(user_id, kind, int(index or 0), self.now)
        return info

    def _fail_step(
        self,
        t: Transition,
        op: GeneratorOp,
        info: StepInfo,
        error: dict[str, Any],
        attempt: int | None,
    ) -> None:
        entry = self.records.entry(
            HistoryKind.STEP_FAILED, op.id, info.user_id, attempt, {"error": error}
        )
        t.settled.append((op.id, {"error": error}, [entry]))

    def _plan_waiting_step(
        self,
        t: Transition,
        op: GeneratorOp,
        info: StepInfo,
        tool: ToolCall | None,
        batch: bool,
        race: bool,
    ) -> None:
        """A step the server carries out itself: a sleep, a wait, an invoke, a request."""
        request = StepRequest(
            id=info.user_id,
            kind=info.kind,
            op=op.op,
            opts=dict(op.opts or {}),
            name=op.name,
            args=tool.args if tool is not None else (),
            kwargs=dict(tool.kwargs) if tool is not None else {},
        )
        # Sleeps are not mocked: virtual time skips them.
        found, mock = (False, None) if op.op is Opcode.SLEEP else self.mocks.for_request(request)
        plan = Plan(op.id, batch, race)
        name = info.user_id
        if op.op is Opcode.SLEEP:
            delta = min(self._sleep_length(op, tool), MAX_SLEEP)
            wake = self.now + int(delta.total_seconds() * 1000)
            plan.jobs.append(
                self.timeline.job(
                    JobKind.WAKE, wake, step_id=op.id, key=f"wake:{op.id}", payload={"name": name}
                )
            )
            until = {"until": _iso(wake)}
            plan.history.append(
                self.records.entry(HistoryKind.SLEEP_STARTED, op.id, name, data=until)
            )
            sleep = SleepRecord(name, delta, dt(wake), info.kind)

            def sleep_started() -> None:
                self.records.sleeps.append(sleep)
                self.records.spy_request(info, request)

            plan.on_open = sleep_started
        elif op.op in (Opcode.WAIT_FOR_EVENT, Opcode.WAIT_FOR_SIGNAL):
            try:
                if op.op is Opcode.WAIT_FOR_EVENT:
                    wait = pauses.wait_for_event(self.run_id, op, name, self.events[0], self.now)
                else:
                    wait = pauses.wait_for_signal(self.run_id, op, name, self.now)
            except pauses.PauseError as exc:
                error = {"name": "Error", "message": f"cannot wait: {exc}"}
                self._fail_step(t, op, info, error, None)
                return
            expires = wait.pause.expires_at or self.now
            plan.history.append(
                self.records.entry(
                    HistoryKind.WAIT_STARTED, op.id, name, data={"until": _iso(expires)}
                )
            )
            if found:
                payload = {"request": request, "mock": mock, "expires": expires}
                plan.jobs.append(
                    self.timeline.job(JobKind.RESOLVE, self.now, step_id=op.id, payload=payload)
                )
            else:
                plan.pause = wait.pause
                assert wait.timeout_job is not None
                timeout_key = wait.timeout_job.key
                plan.jobs.append(
                    self.timeline.job(
                        JobKind.PAUSE_TIMEOUT,
                        expires,
                        key=timeout_key,
                        payload={"pause": wait.pause.key},
                    )
                )
            plan.on_open = lambda: self.records.spy_request(info, request)
        elif op.op is Opcode.INVOKE_FUNCTION:
            function_id = request.function_id or ""
            if not found and function_id not in self.functions:
                raise UnmockedStepError(
                    f"step {name!r} invokes {function_id!r}: mock it (steps={{{name!r}: ...}} "
                    f"or invokes={{{function_id!r}: ...}}) or give the engine that function "
                    "(functions=[...])"
                )
            try:
                expires = pauses.expiry(
                    op.opts and op.opts.get("timeout"), self.now, default=pauses.MAX_WAIT
                )
            except pauses.PauseError as exc:
                self._fail_step(t, op, info, {"name": "Error", "message": str(exc)}, None)
                return
            data = {"function_id": function_id}
            plan.history.append(
                self.records.entry(HistoryKind.INVOKE_STARTED, op.id, name, data=data)
            )
            payload = {"request": request, "mock": mock, "found": found, "expires": expires}
            plan.jobs.append(
                self.timeline.job(JobKind.RESOLVE, self.now, step_id=op.id, payload=payload)
            )
            plan.on_open = lambda: self.records.spy_request(info, request)
        else:  # Gateway (step.fetch), AIGateway (step.ai) and whatever else asks the server
            if not found:
                what = "fetch" if op.op is Opcode.GATEWAY else "ai"
                raise UnmockedStepError(
                    f"step {name!r} ({info.kind}) would make a request from the server: mock "
                    f"it with steps={{{name!r}: ...}} or {what}=..."
                )
            plan.history.append(self.records.entry(HistoryKind.STEP_PLANNED, op.id, name))
            payload = {"request": request, "mock": mock}
            plan.jobs.append(
                self.timeline.job(JobKind.GATEWAY, self.now, step_id=op.id, payload=payload)
            )
        info.mocked = found
        t.planned.append(plan)

    def _sleep_length(self, op: GeneratorOp, tool: ToolCall | None) -> timedelta:
        """How long a sleep lasts in virtual time, from what the tool was given.

        The op carries a wake-up time computed from the real clock; the tool's own
        argument (a duration, or a time to sleep until) is what virtual time needs.
        """
        if tool is not None and tool.tool == "sleep":
            duration = tool.args[0] if tool.args else tool.kwargs["duration"]
            return duration_to_delta(duration, what="sleep duration")
        if tool is not None and tool.tool == "sleep_until":
            until = tool.args[0] if tool.args else tool.kwargs.get("until")
            if isinstance(until, str):
                until = parse_timestamp(until)
            if isinstance(until, datetime):
                until = until if until.tzinfo else until.replace(tzinfo=UTC)
                return max(until - dt(self.now), timedelta(0))
        text = str((op.opts or {}).get("duration") or op.name or "0")
        real_now = datetime.now(UTC)
        try:
            return max(resolve_until(text, real_now) - real_now, timedelta(0))
        except (DurationError, OverflowError):
            return timedelta(0)

    # ---- jobs the server runs itself -----------------------------------------------------

    async def _resolve(self, job: Job) -> None:
        """A mocked wait or invoke gets its answer; an invoked function runs in-process."""
        payload = job.payload
        if "memo" in payload:  # an invoked child's end, reached in virtual time
            self._settle_waiting(job.step_id, payload["memo"], timed_out=payload["timed_out"])
            return
        request: StepRequest = payload["request"]
        info = self.records.info[job.step_id]
        expires = int(payload["expires"])
        if request.op is Opcode.INVOKE_FUNCTION and not payload["found"]:
            child, memo = await self._invoke(request)
            info.invoked = child
            end = self.now + int(child.elapsed.total_seconds() * 1000)
            timed_out = False
            if end > expires:
                end, timed_out = expires, True
                memo = invoke_memo(TIMEOUT, request)
        else:
            if request.op is Opcode.INVOKE_FUNCTION:
                try:
                    value = await answer(payload["mock"], request)
                except Exception as exc:  # the invoked function failed
                    value, memo = exc, {"error": error_of(exc)}
                else:
                    memo = invoke_memo(value, request)
                timed_out = value is TIMEOUT
            else:
                value = await answer(payload["mock"], request)
                timed_out = value is None or value is TIMEOUT
                if request.op is Opcode.WAIT_FOR_EVENT:
                    memo = wait_memo(value, request, self.now, lambda: new_ulid(self.now))
                else:
                    memo = signal_memo(value, request)
            # A wait or invoke that times out ends when its timeout would have passed.
            end = expires if timed_out else self.now
        self.timeline.schedule(
            JobKind.RESOLVE,
            end,
            step_id=job.step_id,
            payload={"memo": memo, "timed_out": timed_out},
        )

    async def _invoke(self, request: StepRequest) -> tuple[RunResult, Any]:
        """Run the invoked function in-process; its result and the parent's memo of it."""
        target = self.functions[request.function_id or ""]
        data = request.data
        data["_inngest"] = {
            "fn_id": target.id,
            "correlation_id": f"{self.run_id}.{request.id}",
            "source_fn_id": self.function.id,
            "source_run_id": self.run_id,
            "name": request.id,
        }
        child = RunDriver(
            function=target,
            mocks=self.mocks,
            events=[{"name": ev.FUNCTION_INVOKED, "data": data}],
            functions=self.functions,
            created_at=self.now,
            retry_interval_s=self.retry_interval_s,
        )
        result = await child.run()
        # What the child's ``inngest/function.finished`` tells the parent's invoke.
        if child.status == "Completed":
            return result, {"data": child.result}
        if child.failure is not None:
            return result, {"error": child.failure.event_error}
        return result, {"error": child.output}

    async def _gateway(self, job: Job) -> None:
        """One attempt of a mocked ``step.fetch`` or ``step.ai`` request."""
        request: StepRequest = job.payload["request"]
        info = self.records.info[job.step_id]
        request = dataclasses.replace(request, attempt=job.attempt)
        spy = self.records.spy_request(info, request)
        gateway = "GatewayError" if request.op is Opcode.GATEWAY else "AIGatewayError"
        try:
            value = await answer(job.payload["mock"], request)
            data = (
                fetch_memo(value, request)
                if request.op is Opcode.GATEWAY
                else as_json(value, f"{request.kind} {request.id!r}")
            )
        except Exception as exc:
            spy.error = exc
            error = error_of(exc, gateway)
            if (
                not isinstance(exc, NonRetriableError)
                and job.attempt + 1 < self.function.max_attempts
            ):
                at = self._backoff(job.attempt)
                entry = self.records.entry(
                    HistoryKind.STEP_ERRORED,
                    job.step_id,
                    info.user_id,
                    job.attempt,
                    {"error": error},
                )
                retry = self.timeline.job(
                    JobKind.GATEWAY,
                    at,
                    step_id=job.step_id,
                    attempt=job.attempt + 1,
                    payload=job.payload,
                )
                self._commit(job, Transition(notes=[entry], jobs=[retry]))
                return
            memo: dict[str, Any] = {"error": error}
            kind = HistoryKind.STEP_FAILED
        else:
            spy.output = data
            memo, kind = {"data": data}, HistoryKind.STEP_COMPLETED
        data_field = memo if kind is HistoryKind.STEP_FAILED else None
        entry = self.records.entry(kind, job.step_id, info.user_id, job.attempt, data_field)
        self._commit(job, Transition(settled=[(job.step_id, memo, [entry])]))

    def _arrive(self, raw: EventLike) -> None:
        """An event reaches the server: cancel the run, or resume the waits it matches."""
        wire = raw.to_wire() if isinstance(raw, Event) else dict(raw)
        record = EventRecord(
            internal_id=new_ulid(self.now),
            id=str(wire.get("id") or new_ulid(self.now)),
            name=str(wire.get("name") or ""),
            data=dict(wire.get("data") or {}),
            user=dict(wire.get("user") or {}),
            ts=int(wire.get("ts") or self.now),
            v=wire.get("v") if isinstance(wire.get("v"), str) else None,
            received_at=self.now,
        )
        matched = [
            p
            for p in list(self.store.pauses.values())
            if p.event_name == record.name and pauses.event_matches(as_pause(p), record)
        ]
        for pause in matched:
            if pause.kind is PauseKind.CANCEL:
                self._cancel(f"cancelled by event {record.name} ({record.internal_id})")
                return
        for pause in matched:
            self._resume(pause, pauses.memo_for_event(as_pause(pause), record), timed_out=False)

    # ---- committing ------------------------------------------------------------------

    def _resume(self, pause: NewPause, memo: Any, *, timed_out: bool) -> None:
        del self.store.pauses[pause.key]
        assert pause.step_id is not None
        self._settle_waiting(pause.step_id, memo, timed_out=timed_out)

    def _settle_waiting(self, step_id: str, memo: Any, *, timed_out: bool) -> None:
        info = self.records.info[step_id]
        info.timed_out = timed_out
        kind = HistoryKind.INVOKE_ENDED if info.kind == "invoke" else HistoryKind.WAIT_ENDED
        entry = self.records.entry(kind, step_id, info.user_id, data={"timed_out": timed_out})
        self._commit(None, Transition(settled=[(step_id, memo, [entry])]))

    def _after_settle(self, step_id: str) -> None:
        info = self.records.info.get(step_id)
        if info is None:
            return
        if self.stop_at is not None and info.user_id == self.stop_at:
            self._stopped = True
        for arrival in self._after_step.pop(info.user_id, []):
            self.timeline.schedule(JobKind.ARRIVAL, self.now, payload={"event": arrival.event})

    # ---- ends ------------------------------------------------------------------------

    def _finish(self, job: Job, *, output: Any = None, failure: Failure | None = None) -> None:
        self.ended_at = self.now
        if failure is not None:
            self.status, self.failure, self.output = "Failed", failure, failure.output
            entry = self.records.entry(
                HistoryKind.RUN_FAILED, attempt=job.attempt, data={"error": failure.output}
            )
        else:
            self.status, self.result, self.output = "Completed", output, output
            entry = self.records.entry(HistoryKind.RUN_COMPLETED)
        self.records.history.append(entry)
        self.timeline.clear()

    def _cancel(self, reason: str) -> None:
        error = lifecycle.standard_error({"name": "FunctionCancelledError", "message": reason})
        self.status, self.ended_at, self.output = "Cancelled", self.now, error
        self.error = RunCancelledError(reason)
        self.records.history.append(
            self.records.entry(HistoryKind.RUN_CANCELLED, data={"reason": reason})
        )
        self.timeline.clear()

    # ---- the hook TestExecution calls ------------------------------------------------

    def step_body(
        self, call: StepCall, body: StepBody, tool: ToolCall | None, attempt: int
    ) -> StepBody:
        """A run-type step's body: counted by its spy, and replaced by its mock if any."""

        async def run_step() -> Any:
            kind = tool.tool if tool is not None else "run"
            info = self.records.info.get(call.hashed_id)
            if info is None:
                info = self.records.info[call.hashed_id] = StepInfo(
                    call.user_id, kind, call.index, self.now
                )
            args = tool.args if tool is not None else ()
            kwargs = dict(tool.kwargs) if tool is not None else {}
            fn = args[0] if kind == "run" and args else None
            if fn is not None:
                args = args[1:]
            found, mock = self.mocks.for_run_step(call.user_id)
            info.mocked = found
            spy = self.records.spy(info, args, kwargs, attempt, mocked=found, fn=fn)
            try:
                output = await answer(mock, *args, **kwargs) if found else await body()
            except Exception as exc:
                spy.error = exc
                raise
            spy.output = output
            return output

        return run_step

    # ---- the report ------------------------------------------------------------------

    def report(self) -> RunResult:
        return RunResult(
            run_id=self.run_id,
            function_id=self.function.id,
            result=self.result,
            error=self.error,
            steps=list(self.records.steps),
            state=RunState(
                status=self.status,
                memos=dict(self.store.memos),
                stack=list(self.store.stack),
                started_at=dt(self.started_at) if self.started_at is not None else None,
                ended_at=dt(self.ended_at) if self.ended_at is not None else None,
                requests=self.requests,
                output=self.output,
            ),
            history=list(self.records.history),
            sleeps=list(self.records.sleeps),
            sent_events=list(self.records.sent_events),
            spies=self.records.spies,
            events=[dict(e) for e in self.events],
            created_at=dt(self.created_at),
        )


def _iso(ms: int) -> str:
    return to_iso(dt(ms))
