"""One call request's run of a function: replay memoized steps, then find or run new work.

Every call re-runs the handler from the top. Each step call gets its wire ID from a
``StepIdCounter`` and either returns its memo (replay) or is new. A new step does not
stop the handler at once: it registers what it would report and then waits, so that
every step started in the same turn (``asyncio.gather``, ``ctx.step.parallel``) is found.
Once the handler has settled, ``Execution.run`` decides:

* exactly one new step, a run-type one, immediate execution allowed: run it now and
  answer ``[StepRun]`` (or ``StepError``/``StepFailed``);
* otherwise: answer every new step (run-type ones as ``StepPlanned``) in one 206.

A targeted call (``stepId=<hash>``) runs its target where user code reaches it and
answers with that alone; other new steps just wait. Either way the waiting steps are
then released with ``StepInterrupt`` (threads) or cancellation (tasks).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn, cast

import anyio.lowlevel
import anyio.to_thread

from ..errors import NonRetriableError, RetryAfterError, StepError
from ..protocol import RUN_COMPLETE_ID, GeneratorOp, Opcode, StepIdCounter, dumps
from ..protocol.sessions import shared_sessions
from .call import CallRequest
from .context import Context, SyncContext
from .current import (
    Branch,
    BranchStopped,
    Outcome,
    ParallelMode,
    branch_var,
    execution_var,
    in_step_var,
    step_metadata_var,
)
from .defer import Defer, Parent, parent_of
from .event import Event
from .logger import ReplayAwareLogger
from .metadata import StepMetadata
from .step import Step, SyncStep

if TYPE_CHECKING:
    from .client import Stepwise
    from .function import AsyncHandler, Function, SyncHandler

# Event-loop turns without a newly blocked step before the handler counts as settled.
# Steps started together reach their first new step within a turn or two; nested
# gathers add a turn per level.
SETTLE_TURNS = 5


class StepInterrupt(BaseException):
    """Stops user code at a step boundary.

    A ``BaseException`` so that a user's ``except Exception`` around a step cannot
    swallow it and carry on past a step whose result the server does not have yet.
    """


class _NoMemo:
    __slots__ = ()


NO_MEMO: Any = _NoMemo()


@dataclass(frozen=True, slots=True)
class StepCall:
    """One step call as the replay sees it."""

    user_id: str
    hashed_id: str
    index: int
    memo: Any

    @property
    def memoized(self) -> bool:
        return self.memo is not NO_MEMO

    def op(self, opcode: Opcode, **fields: Any) -> GeneratorOp:
        fields.setdefault("name", self.user_id)
        return GeneratorOp(
            op=opcode,
            id=self.hashed_id,
            display_name=self.user_id,
            userland={"id": self.user_id, "index": self.index},
            **fields,
        )


@dataclass(frozen=True, slots=True)
class _NewStep:
    """A new step found during this call, waiting for the decision of what to answer."""

    op: GeneratorOp
    execute: Callable[[], Coroutine[Any, Any, None]] | None
    """Runs a run-type step's body and records its outcome; ``None`` for other ops."""
    context: contextvars.Context
    """The context the step was called in, so its body sees the same context variables."""


@dataclass(frozen=True, slots=True)
class CallResult:
    """The answer to a call request, before HTTP framing (headers are the handler's job)."""

    status: int
    body: bytes
    no_retry: bool = False
    retry_at: datetime | None = None


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, StepError):
        return {
            "name": exc.name,
            "message": exc.message,
            "stack": exc.stack if exc.stack is not None else _stack(exc),
        }
    message = getattr(exc, "message", None)
    return {
        "name": type(exc).__name__,
        "message": message if isinstance(message, str) else str(exc),
        "stack": _stack(exc),
    }


def _stack(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


class OutputUnserializableError(NonRetriableError):
    """A step or function returned something that cannot be sent as JSON."""


class Execution:
    """The state of one call: memos, the step-ID counter, and the new steps found so far."""

    def __init__(
        self,
        *,
        client: Stepwise,
        function: Function,
        request: CallRequest,
        target_step: str | None,
        logger: logging.Logger,
    ) -> None:
        self.client = client
        self.function = function
        self.request = request
        self.target_step = target_step
        self.max_attempts = request.max_attempts or function.max_attempts
        self.ops: list[GeneratorOp] = []
        """Outcomes of steps run during this call (the targeted or immediately run step)."""
        self.retry_at: datetime | None = None
        self.logger = ReplayAwareLogger(logger, self.is_replaying)
        self.step_tools = Step(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_token: anyio.lowlevel.EventLoopToken | None = None
        """Lets ``def`` handlers (or threads they start) call step tools on this loop."""
        self._memos = request.steps
        self._completion_order = {step_id: i for i, step_id in enumerate(request.stack)}
        self._counter = StepIdCounter()
        self._consumed: set[str] = set()
        self._new_steps: dict[str, _NewStep] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._blocked_count = 0
        self._progress = asyncio.Event()
        self._interrupted = False
        self._target_memoized = False
        self._target_running = False
        self._handler_thread_blocked = False
        self._prior_defers = dict(request.defers or {})
        self._lazy: list[GeneratorOp] = []
        """Defers (``DeferAdd``, ``DeferAbort``): they go out with whatever the call answers."""
        self._lazy_ids: set[str] = set()
        self.sessions: dict[str, str] = (
            shared_sessions(e.get("meta") for e in request.events or [request.event])
            if client.config.session_propagation
            else {}
        )
        """The run's sessions (``ctx.sessions``): those all its events share."""

    # -- defers ---------------------------------------------------------------------

    def add_lazy(self, op: GeneratorOp, *, user_id: str) -> bool:
        """Record a ``DeferAdd`` or ``DeferAbort``; False if it is left out (a second defer
        with the same id, an abort of a defer that can no longer be aborted)."""
        if op.op is Opcode.DEFER_ADD:
            if op.id in self._lazy_ids:
                self.logger.warning(
                    "defer %r skipped: a defer with this id exists in the run", user_id
                )
                return False
            self._lazy_ids.add(op.id)
            if op.id not in self._prior_defers:  # else the server has it from an earlier call
                self._lazy.append(op)
            return True
        target = (op.opts or {}).get("target_hashed_id")
        if self._prior_defers.get(str(target)) is False or op.id in self._lazy_ids:
            return False
        self._lazy_ids.add(op.id)
        # An abort of a defer added in this same call replaces it: neither needs to go out,
        # but the abort does, so that a replay that adds it again knows it was aborted.
        self._lazy = [o for o in self._lazy if not (o.op is Opcode.DEFER_ADD and o.id == target)]
        self._lazy.append(op)
        return True

    def _drain_lazy(self) -> list[GeneratorOp]:
        lazy, self._lazy = self._lazy, []
        return lazy

    # -- what step tools call -------------------------------------------------------

    def is_replaying(self) -> bool:
        """True while some memo has not been handed back yet (code already ran before)."""
        return len(self._consumed) < len(self._memos)

    def begin(self, user_id: str) -> StepCall:
        if self._interrupted:
            # User code swallowed the interrupt with a bare ``except BaseException``.
            raise StepInterrupt
        if not isinstance(user_id, str) or not user_id:
            raise NonRetriableError("a step ID must be a non-empty string")
        if in_step_var.get():
            # The body would wait for a step that cannot be planned until the body ends.
            raise NonRetriableError(f"step {user_id!r} was called inside a step.run body")
        hashed_id, index = self._counter.next_id(user_id)
        memo = self._memos.get(hashed_id, NO_MEMO)
        if memo is not NO_MEMO:
            self._consumed.add(hashed_id)
            if hashed_id == self.target_step:
                self._target_memoized = True
            branch = branch_var.get()
            if branch is not None:
                # A memo missing from the stack completed after every listed one.
                position = self._completion_order.get(hashed_id, len(self._completion_order))
                for owner in branch.lineage():
                    owner.position = max(owner.position, position)
        return StepCall(user_id=user_id, hashed_id=hashed_id, index=index, memo=memo)

    @staticmethod
    def replay(call: StepCall) -> Any:
        """The step's result from its memo; a failed step raises ``StepError`` here."""
        memo = call.memo
        if isinstance(memo, dict):
            keys = set(memo)
            if keys <= {"data", "error"} and memo.get("error") is not None:
                error = memo["error"]
                if isinstance(error, dict):
                    raise StepError(
                        str(error.get("message", "")),
                        name=str(error.get("name") or "Error"),
                        stack=error.get("stack") if isinstance(error.get("stack"), str) else None,
                    )
                raise StepError(str(error))
            if keys and keys <= {"data", "error"}:
                return memo.get("data")
        return memo

    async def run_or_plan(
        self,
        call: StepCall,
        body: Callable[[], Awaitable[Any]],
        opts: dict[str, Any] | None = None,
    ) -> NoReturn:
        """A new run-type step: run it now if it is the target, else plan it and wait."""
        if self.target_step is not None and call.hashed_id == self.target_step:
            self._target_running = True
            await self._run_step(call, body, opts)
            self._interrupt()
        planned = call.op(Opcode.STEP_PLANNED, opts=opts)
        await self.plan(call, planned, execute=partial(self._run_step, call, body, opts))

    async def plan(
        self,
        call: StepCall,
        op: GeneratorOp,
        execute: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> NoReturn:
        """Register a new step's op and wait until the call has its answer.

        A targeted call may only answer for its target, so other new steps register nothing.
        """
        branch = branch_var.get()
        if self.target_step is None:
            if branch is not None and branch.in_race():
                op = replace(op, opts={**(op.opts or {}), "parallelMode": "race"})
            self._new_steps[call.hashed_id] = _NewStep(op, execute, contextvars.copy_context())
            if branch is not None:
                for owner in branch.lineage():
                    owner.pending.append(call.hashed_id)
        await self._wait_for_answer(branch)

    async def _wait_for_answer(self, branch: Branch | None) -> NoReturn:
        self._blocked_count += 1
        self._progress.set()
        if branch is not None:
            for owner in branch.lineage():
                owner.blocked = True
                if owner.changed is not None:
                    owner.changed.set()
            if branch.sequential:
                raise BranchStopped
        if not self.function.is_async:
            # Only the handler's own thread gets here (its parallel branches stop instead).
            self._handler_thread_blocked = True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter  # resolved only by ``_release``, with StepInterrupt
        raise StepInterrupt

    async def _run_step(
        self,
        call: StepCall,
        body: Callable[[], Awaitable[Any]],
        opts: dict[str, Any] | None,
    ) -> None:
        token = in_step_var.set(True)
        metadata: list[dict[str, Any]] = []
        metadata_token = step_metadata_var.set(metadata)
        try:
            output = await body()
        except Exception as exc:
            self._record_failure(call, exc, opts, metadata)
            return
        finally:
            in_step_var.reset(token)
            step_metadata_var.reset(metadata_token)
        try:
            dumps(output)
        except TypeError as exc:
            unserializable = OutputUnserializableError(
                f"step {call.user_id!r} returned a non-JSON value: {exc}"
            )
            self._record_failure(call, unserializable, opts, metadata)
            return
        self._record(
            call.op(
                Opcode.STEP_RUN, opts=opts, data=output, has_data=True, metadata=metadata or None
            )
        )

    def _record_failure(
        self,
        call: StepCall,
        exc: Exception,
        opts: dict[str, Any] | None,
        metadata: list[dict[str, Any]] | None = None,
    ) -> None:
        final = isinstance(exc, NonRetriableError) or self.request.attempt + 1 >= self.max_attempts
        if isinstance(exc, RetryAfterError) and not final:
            self.retry_at = exc.retry_at
        opcode = Opcode.STEP_FAILED if final else Opcode.STEP_ERROR
        self._record(
            call.op(opcode, opts=opts, error=error_to_wire(exc), metadata=metadata or None)
        )

    def _record(self, op: GeneratorOp) -> None:
        self.ops.append(op)
        self._progress.set()

    def _interrupt(self) -> NoReturn:
        self._interrupted = True
        raise StepInterrupt

    # -- parallel branches -------------------------------------------------------------

    async def race(self, branches: Sequence[Callable[[], Awaitable[Any]]]) -> Any:
        """Run branches as tasks; the first to complete (in the server's order) wins."""
        parent = branch_var.get()
        changed = asyncio.Event()
        states = [Branch(mode="race", parent=parent, changed=changed) for _ in branches]
        tasks: list[asyncio.Task[Any]] = []
        for state, branch in zip(states, branches, strict=True):
            context = contextvars.copy_context()
            context.run(branch_var.set, state)
            tasks.append(asyncio.create_task(_await_call(branch), context=context))
        try:
            # Until every branch has finished or waits at a new step.
            while not all(t.done() or s.blocked for t, s in zip(tasks, states, strict=True)):
                changed.clear()
                waiter = asyncio.ensure_future(changed.wait())
                running = [
                    t for t, s in zip(tasks, states, strict=True) if not (t.done() or s.blocked)
                ]
                try:
                    await asyncio.wait([*running, waiter], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
            finished = [
                (state, _outcome_of(task))
                for state, task in zip(states, tasks, strict=True)
                if task.done()
            ]
            winner = await self.conclude("race", finished, [s for s in states if s.blocked])
        finally:
            # Losers are abandoned where they stand; their reported steps were withdrawn.
            for task in tasks:
                task.cancel()
                task.add_done_callback(_retrieve)
        await asyncio.wait(tasks)
        return winner

    async def conclude(
        self,
        mode: ParallelMode,
        finished: list[tuple[Branch, Outcome]],
        stopped: list[Branch],
    ) -> Any:
        """The result of a parallel group once each branch finished or stopped at a new step.

        ``wait``: every result in order, or wait while any branch waits. ``race``: the
        finished branch whose memos completed first wins; the steps the others reported
        are withdrawn, since they no longer matter to the run.
        """
        for _, outcome in finished:
            if outcome.error is not None and not isinstance(outcome.error, Exception):
                raise outcome.error  # StepInterrupt from a targeted step, cancellation
        if mode == "race" and finished:
            _, winner = min(enumerate(finished), key=lambda item: (item[1][0].position, item[0]))[1]
            for state in stopped:
                for hashed_id in state.pending:
                    self._new_steps.pop(hashed_id, None)
            return winner.unwrap()
        if stopped:
            await self._wait_for_answer(branch_var.get())
        return [outcome.unwrap() for _, outcome in finished]

    # -- running the handler ---------------------------------------------------------

    async def run(self) -> CallResult:
        self.loop = asyncio.get_running_loop()
        self.loop_token = anyio.lowlevel.current_token()
        task = self._start_handler()
        try:
            await self._drive(task)
            return self._result(task)
        finally:
            await self._release(task)

    def _start_handler(self) -> asyncio.Task[Any]:
        events = self.request.typed_events()
        parents: list[Parent] = []
        if self.function.deferred:
            seen = [parent_of(e) for e in events]
            events, parents = [e for e, _ in seen], [p for _, p in seen]
        fields: dict[str, Any] = {
            "event": events[0] if events else Event(name=""),
            "events": events,
            "run_id": self.request.run_id,
            "attempt": self.request.attempt,
            "max_attempts": self.max_attempts,
            "logger": self.logger,
            "defer": Defer(self),
            "metadata": StepMetadata(),
            "sessions": dict(self.sessions),
            "parents": parents,
        }
        handler = self.function.handler
        token = execution_var.set(self)
        try:
            if self.function.is_async:
                ctx = Context(**fields, step=self.step_tools)
                return asyncio.create_task(_await_call(partial(cast("AsyncHandler", handler), ctx)))
            # A def handler may block; run it off the event loop.
            sync_ctx = SyncContext(**fields, step=SyncStep(self.step_tools))
            return asyncio.create_task(
                anyio.to_thread.run_sync(cast("SyncHandler", handler), sync_ctx)
            )
        finally:
            execution_var.reset(token)

    def _busy(self) -> bool:
        """Work that will end by itself is under way: the target step, or the handler's thread."""
        thread_running = not self.function.is_async and not self._handler_thread_blocked
        return self._target_running or thread_running

    async def _drive(self, task: asyncio.Task[Any]) -> None:
        while True:
            await self._next_progress(task)
            if task.done() or self.ops:
                return
            if self._busy():
                continue
            await self._settle(task)
            if task.done() or self.ops:
                return
            if self._busy():
                continue
            await self._maybe_execute_now()
            return

    async def _next_progress(self, task: asyncio.Task[Any]) -> None:
        if not self._progress.is_set():
            waiter = asyncio.ensure_future(self._progress.wait())
            try:
                await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        self._progress.clear()

    async def _settle(self, task: asyncio.Task[Any]) -> None:
        """Let tasks started in the same turn reach their first new step."""
        quiet, seen = 0, self._blocked_count
        while quiet < SETTLE_TURNS:
            await asyncio.sleep(0)
            if task.done() or self.ops or self._busy():
                return
            if self._blocked_count != seen:
                quiet, seen = 0, self._blocked_count
            else:
                quiet += 1
        self._progress.clear()

    async def _maybe_execute_now(self) -> None:
        """Immediate execution: the only new step is a run-type one, and the server allows it."""
        if self.target_step is not None or self.request.disable_immediate_execution:
            return
        if len(self._new_steps) != 1:
            return
        (new_step,) = self._new_steps.values()
        if new_step.execute is None:
            return
        self._new_steps.clear()
        await asyncio.create_task(new_step.execute(), context=new_step.context)

    async def _release(self, task: asyncio.Task[Any]) -> None:
        """Stop user code still waiting at steps, and wait for the handler to end."""
        self._interrupted = True
        if not task.done() and self.function.is_async:
            task.cancel()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(StepInterrupt())
        if not task.done():
            await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as lost

    def _result(self, task: asyncio.Task[Any]) -> CallResult:
        if not task.done() or task.cancelled():
            return self._ops_result()
        exc = task.exception()
        if exc is None:
            if self.ops or self._new_steps or self.target_step is not None:
                return self._ops_result()
            try:
                body = dumps(task.result())
            except TypeError as error:
                return self._function_error(
                    OutputUnserializableError(f"the function returned a non-JSON value: {error}")
                )
            if self._lazy:
                # Defers go out with the run's end: the return value rides on RunComplete.
                complete = GeneratorOp(
                    op=Opcode.RUN_COMPLETE, id=RUN_COMPLETE_ID, data=task.result(), has_data=True
                )
                ops = [*self._drain_lazy(), complete]
                return CallResult(status=206, body=dumps([op.to_wire() for op in ops]))
            return CallResult(status=200, body=body)
        if isinstance(exc, Exception):
            if self.ops or self._new_steps:
                return self._ops_result()
            return self._function_error(exc)
        if isinstance(exc, StepInterrupt | BranchStopped):
            return self._ops_result()
        raise exc

    def _ops_result(self) -> CallResult:
        ops = self.ops or [new_step.op for new_step in self._new_steps.values()]
        if not ops and self.target_step is not None and not self._target_memoized:
            error = {
                "name": "StepNotFoundError",
                "message": f"step {self.target_step} was not reached by this run",
                "code": "step_not_found",
            }
            return CallResult(status=500, body=dumps(error))
        # An empty list (a targeted step already memoized) is the protocol's "nothing to do".
        body = dumps([op.to_wire() for op in [*ops, *self._drain_lazy()]])
        return CallResult(status=206, body=body, retry_at=self.retry_at)

    def _function_error(self, exc: Exception) -> CallResult:
        error = error_to_wire(exc)
        no_retry = isinstance(exc, NonRetriableError | StepError)
        retry_at: datetime | None = None
        if isinstance(exc, OutputUnserializableError):
            error["code"] = "output_unserializable"
        elif isinstance(exc, NonRetriableError):
            error["code"] = "non_retriable_error"
        elif isinstance(exc, StepError):
            error["code"] = "step_errored"
        elif isinstance(exc, RetryAfterError):
            error["code"] = "retry_after_error"
            retry_at = exc.retry_at
        else:
            error["code"] = "function_errored"
        if self._lazy:
            # Defers go out with the function's error, which rides on the run's own op.
            opcode = Opcode.STEP_FAILED if no_retry else Opcode.STEP_ERROR
            failed = GeneratorOp(op=opcode, id=RUN_COMPLETE_ID, error=error)
            ops = [*self._drain_lazy(), failed]
            return CallResult(
                status=206,
                body=dumps([op.to_wire() for op in ops]),
                no_retry=no_retry,
                retry_at=retry_at,
            )
        return CallResult(status=500, body=dumps(error), no_retry=no_retry, retry_at=retry_at)


async def _await_call(fn: Callable[[], Awaitable[Any]]) -> Any:
    return await fn()


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # so asyncio does not log an abandoned branch's error as lost


def _outcome_of(task: asyncio.Task[Any]) -> Outcome:
    if task.cancelled():
        return Outcome(error=asyncio.CancelledError())
    error = task.exception()
    return Outcome(error=error) if error is not None else Outcome(value=task.result())
