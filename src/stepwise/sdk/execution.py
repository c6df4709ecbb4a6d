"""One call request's run of a function: replay memoized steps, then find or run new work.

Every call re-runs the handler from the top. Each step call gets its wire ID from a
``StepIdCounter`` and either returns its memo (replay) or is new. A new step does not
stop the handler at once: it registers what it would report and then waits, so that
every step started in the same turn (``asyncio.gather``, ``ctx.step.parallel``) is found.
Once the handler has settled, ``Execution.run`` decides:

* exactly one new step, a run-type one, immediate execution allowed: run it now and
  answer ``[StepRun]`` (or ``StepError``/``StepFailed``);
* otherwise: answer every new step (run-type ones as ``StepPlanned``) in one 206.

With checkpointing (``checkpoint.py``) a step run now whose caller waits for it is not
answered: its result is posted to the server and, once saved, handed to the caller, and
the handler goes on to its next step in the same call. The call then ends as above, at
the first step it cannot run at once, or with ``[RunComplete]`` when the function returns.

A targeted call (``stepId=<hash>``) runs its target where user code reaches it and
answers with that alone; other new steps just wait. Either way the waiting steps are
then released with ``StepInterrupt`` (threads) or cancellation (tasks).

Middleware hooks (``middleware.py``) frame the call: ``transform_input`` before the
handler starts, ``after_memoization``/``before_execution`` when the last memo has been
handed back or the first new step is reached, ``wrap_step`` around each step body, and
``after_execution``, ``transform_output``, ``finished``, ``before_response`` once the
call has its answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn, cast

import anyio.lowlevel
import anyio.to_thread

from ..errors import NonRetriableError, RetryAfterError, StepError
from ..protocol import RUN_COMPLETE_ID, GeneratorOp, Opcode, StepIdCounter, dumps, loads
from ..protocol.sessions import shared_sessions
from .call import CallRequest
from .checkpoint import Checkpointer, Flushed, stale_dispatch_error
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
from .metadata import StepMetadata
from .middleware import (
    Deps,
    FunctionRun,
    MiddlewareStack,
    Output,
    RunInput,
    StepInfo,
    StepKind,
    StepMemo,
    kind_of,
)
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
class _Ran:
    """A step body run during this call, and how it ended; its op is built at the answer."""

    call: StepCall
    step: StepInfo
    opts: dict[str, Any] | None
    value: Any = None
    error: Exception | None = None
    metadata: list[dict[str, Any]] | None = None
    """Metadata the body set (``ctx.metadata``): it goes out on the step's op."""
    op: GeneratorOp | None = None
    """The op, once built (``transform_output`` runs once per step)."""


@dataclass(frozen=True, slots=True)
class _NewStep:
    """A new step found during this call, waiting for the decision of what to answer."""

    op: GeneratorOp
    step: StepInfo
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
        checkpoints: Checkpointer | None = None,
    ) -> None:
        self.client = client
        self.function = function
        self.request = request
        self.target_step = target_step
        self.max_attempts = request.max_attempts or function.max_attempts
        self.ran: list[_Ran] = []
        """Steps run during this call (the targeted or immediately run step)."""
        self.retry_at: datetime | None = None
        self.checkpoints = checkpoints
        """Set when this call checkpoints its steps (see the module docstring)."""
        self._answer: CallResult | None = None
        """An answer a checkpoint decided: a stale dispatch, or steps it could not save."""
        self._resumable: dict[str, asyncio.Future[Any]] = {}
        """Callers waiting at a new step outside any parallel branch, by hashed ID: what a
        checkpointed step's result is handed to."""
        self.middleware = MiddlewareStack([*client.middleware, *function.middleware])
        events = request.typed_events()
        self.run_info = FunctionRun(
            client=client,
            function=function,
            run_id=request.run_id,
            attempt=request.attempt,
            max_attempts=self.max_attempts,
            event=events[0],
            events=events,
        )
        self._wraps_memoized = self.middleware.wraps_memoized()
        self._memoization_end: asyncio.Future[None] | None = None
        self._hooks_running = False
        self._executing = False
        self._hook_error: Exception | None = None
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
                self.client.logger.warning(
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

    def _with_lazy(self, result: CallResult) -> CallResult:
        """The function's own answer, with the defers it made: they ride on its end, as
        ``RunComplete`` (the return value) or the run's own error op."""
        checkpointing = self.checkpoints is not None
        if result.status not in (200, 500) or not (self._lazy or checkpointing):
            return result
        held: list[GeneratorOp] = []
        if result.status == 200:
            if self.checkpoints is not None:
                # Steps still held (buffered_steps > 1) are saved with the run's end.
                held, self.checkpoints.buffer = self.checkpoints.buffer, []
            end = GeneratorOp(
                op=Opcode.RUN_COMPLETE, id=RUN_COMPLETE_ID, data=loads(result.body), has_data=True
            )
        elif not self._lazy:
            return result
        else:
            opcode = Opcode.STEP_FAILED if result.no_retry else Opcode.STEP_ERROR
            end = GeneratorOp(op=opcode, id=RUN_COMPLETE_ID, error=loads(result.body))
        body = dumps([op.to_wire() for op in [*held, *self._drain_lazy(), end]])
        return CallResult(206, body, no_retry=result.no_retry, retry_at=result.retry_at)

    # -- what step tools call -------------------------------------------------------

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

    async def replayed(self, call: StepCall, kind: StepKind, input: tuple[Any, ...] = ()) -> Any:
        """A memoized step's result (``StepError`` for a failed one), through the
        ``wrap_step`` of middleware that wrap memoized steps too."""
        try:
            if not self._wraps_memoized:
                return self.replay(call)
            step = _step_info(call, kind, input, memoized=True)

            async def memo() -> Any:
                return self.replay(call)

            return await self.middleware.wrap_step(self.run_info, step, memo, memoized=True)
        finally:
            if len(self._consumed) == len(self._memos):
                await self.end_memoization()

    def start_memoization_end(self) -> asyncio.Future[None]:
        """Start ``after_memoization`` and ``before_execution``, once per call: the first
        time user code gets past its memoized steps."""
        if self._memoization_end is None:
            if self.middleware.has("after_memoization") or self.middleware.has("before_execution"):
                self._memoization_end = asyncio.ensure_future(self._memoization_hooks())
            else:  # nothing to call: no task, no event-loop turn
                self.run_info.replaying = False
                self._executing = True
                self._memoization_end = asyncio.get_running_loop().create_future()
                self._memoization_end.set_result(None)
        return self._memoization_end

    async def end_memoization(self) -> None:
        """Wait until the memoization hooks have run, before code runs for the first time;
        concurrent branches wait for the same hooks."""
        future = self.start_memoization_end()
        if not future.done():
            await asyncio.shield(future)
        if self._hook_error is not None:
            self._interrupt()

    async def _memoization_hooks(self) -> None:
        self._hooks_running = True
        self.run_info.replaying = False
        try:
            await self.middleware.call("after_memoization", self.run_info, reverse=True)
            self._executing = True
            await self.middleware.call("before_execution", self.run_info)
        except Exception as exc:
            self._hook_error = exc
        finally:
            self._hooks_running = False
            self._progress.set()

    async def run_or_plan(
        self,
        call: StepCall,
        body: Callable[[], Awaitable[Any]],
        opts: dict[str, Any] | None = None,
        input: tuple[Any, ...] = (),
    ) -> Any:
        """A new run-type step: run it now if it is the target, else plan it and wait.

        Returns only when a checkpoint saved the step's result: that result, as JSON."""
        step = _step_info(call, kind_of(Opcode.STEP_RUN, opts), input)
        if self.target_step is not None and call.hashed_id == self.target_step:
            await self.end_memoization()
            self._target_running = True
            await self._run_step(call, step, body, opts)
            self._interrupt()
        planned = call.op(Opcode.STEP_PLANNED, opts=opts)
        execute = partial(self._run_step, call, step, body, opts)
        return await self._register(call, planned, execute=execute, step=step)

    async def plan(
        self, call: StepCall, op: GeneratorOp, *, input: tuple[Any, ...] = ()
    ) -> NoReturn:
        """Register a new step that needs the server (a sleep, a wait, an invoke...) and wait
        until the call has its answer."""
        await self._register(call, op, input=input)
        raise StepInterrupt  # not reached: only a run-type step is handed a result

    async def _register(
        self,
        call: StepCall,
        op: GeneratorOp,
        execute: Callable[[], Coroutine[Any, Any, None]] | None = None,
        *,
        step: StepInfo | None = None,
        input: tuple[Any, ...] = (),
    ) -> Any:
        """Register a new step's op and wait until the call has its answer (or, for a step
        run and checkpointed, its result).

        A targeted call may only answer for its target, so other new steps register nothing.
        Registering runs no user code, so it need not wait for the memoization hooks; the
        call's answer does (``_busy``).
        """
        self.start_memoization_end()
        branch = branch_var.get()
        if self.target_step is None:
            if branch is not None and branch.in_race():
                op = replace(op, opts={**(op.opts or {}), "parallelMode": "race"})
            if step is None:
                step = _step_info(call, kind_of(op.op, op.opts), input)
            self._new_steps[call.hashed_id] = _NewStep(
                op, step, execute, contextvars.copy_context()
            )
            if branch is not None:
                for owner in branch.lineage():
                    owner.pending.append(call.hashed_id)
        return await self._wait_for_answer(branch, call.hashed_id)

    async def _wait_for_answer(self, branch: Branch | None, hashed_id: str | None = None) -> Any:
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
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if branch is None and hashed_id is not None and self.checkpoints is not None:
            self._resumable[hashed_id] = waiter
        # Resolved by ``_release`` with StepInterrupt, or with a checkpointed step's result.
        return await waiter

    async def _run_step(
        self,
        call: StepCall,
        step: StepInfo,
        body: Callable[[], Awaitable[Any]],
        opts: dict[str, Any] | None,
    ) -> None:
        token = in_step_var.set(True)
        metadata: list[dict[str, Any]] = []
        metadata_token = step_metadata_var.set(metadata)
        try:
            output = await self.middleware.wrap_step(self.run_info, step, body)
        except Exception as exc:
            self._record(_Ran(call, step, opts, error=exc, metadata=metadata))
            return
        finally:
            in_step_var.reset(token)
            step_metadata_var.reset(metadata_token)
        self._record(_Ran(call, step, opts, value=output, metadata=metadata))

    async def _checkpoint_ran(self) -> bool:
        """After a step ran at once in a checkpointing call: save its result and hand it to
        its caller. False when the call answers instead: the step failed, its caller is a
        parallel branch, this is a retry (it hands its one result back, so the next step
        gets attempts of its own), or the checkpoint could not be made."""
        checkpoints = self.checkpoints
        assert checkpoints is not None
        (ran,) = self.ran
        waiter = self._resumable.pop(ran.call.hashed_id, None)
        if waiter is None or ran.error is not None or self.request.attempt > 0:
            return False
        op = await self._step_op(ran)
        if op.op is not Opcode.STEP_RUN:  # transform_output failed, or the value is not JSON
            self.ran[0] = replace(ran, op=op)
            return False
        self.ran.clear()
        flushed = await checkpoints.add(op, self._drain_lazy)
        if flushed is Flushed.STALE:
            self._answer = self._stale()
            return False
        if flushed is Flushed.FAILED:
            self._answer = self._fallback(checkpoints)
            return False
        # Saved (or held, buffered_steps > 1): the caller goes on with the result a replay
        # would give it.
        try:
            value = loads(dumps(ran.value))
        except TypeError:
            value = op.data
        self._progress.clear()
        self._handler_thread_blocked = False
        waiter.set_result(value)
        return True

    async def _settle_checkpoints(self) -> CallResult | None:
        """Wait for a flush the interval timer started: a 409 it got ends the call."""
        if self.checkpoints is None:
            return None
        await self.checkpoints.settle()
        return self._stale() if self.checkpoints.stale else None

    def _stale(self) -> CallResult:
        body = dumps(stale_dispatch_error(self.request.run_id))
        return CallResult(status=400, body=body, no_retry=True)

    def _fallback(self, checkpoints: Checkpointer) -> CallResult:
        """The answer when steps could not be checkpointed: those steps, to save now."""
        ops, checkpoints.buffer = checkpoints.buffer, []
        body = dumps([op.to_wire() for op in [*ops, *self._drain_lazy()]])
        return CallResult(status=206, body=body)

    async def _flush_before_answer(self, *, with_lazy: bool = False) -> CallResult | None:
        """Save held steps (and with ``with_lazy`` the defers made) before the call answers
        something else; the answer to give instead when that fails."""
        answer = await self._settle_checkpoints()
        checkpoints = self.checkpoints
        if answer is not None or checkpoints is None:
            return answer
        if not checkpoints.buffer and not (with_lazy and self._lazy):
            return None
        flushed = await checkpoints.flush(self._drain_lazy)
        if flushed is Flushed.STALE:
            return self._stale()
        if flushed is Flushed.FAILED:
            return self._fallback(checkpoints)
        return None

    def _record(self, ran: _Ran) -> None:
        self.ran.append(ran)
        self._progress.set()

    async def _step_op(self, ran: _Ran) -> GeneratorOp:
        """The op reporting a step run in this call, once ``transform_output`` has seen it."""
        if ran.op is not None:
            return ran.op
        out = Output(
            data=ran.value, error=ran.error, step=ran.step, opcode=Opcode.STEP_RUN, opts=ran.opts
        )
        try:
            await self.middleware.call("transform_output", self.run_info, out, reverse=True)
        except Exception as exc:
            out.error = exc
        call = ran.call
        if out.error is None:
            try:
                dumps(out.data)
            except TypeError as exc:
                out.error = OutputUnserializableError(
                    f"step {call.user_id!r} returned a non-JSON value: {exc}"
                )
        metadata = ran.metadata or None
        if out.error is None:
            return call.op(
                Opcode.STEP_RUN, opts=out.opts, data=out.data, has_data=True, metadata=metadata
            )
        error = out.error
        final = (
            isinstance(error, NonRetriableError) or self.request.attempt + 1 >= self.max_attempts
        )
        if isinstance(error, RetryAfterError) and not final:
            self.retry_at = error.retry_at
        opcode = Opcode.STEP_FAILED if final else Opcode.STEP_ERROR
        return call.op(opcode, opts=out.opts, error=error_to_wire(error), metadata=metadata)

    async def _reported_op(self, new_step: _NewStep) -> GeneratorOp:
        """A new step's op (planned, sleep, invoke...), once ``transform_output`` has seen it."""
        op = new_step.op
        out = Output(
            step=new_step.step,
            opcode=op.op,
            opts=dict(op.opts) if op.opts is not None else None,
            has_data=False,
        )
        await self.middleware.call("transform_output", self.run_info, out, reverse=True)
        return op if out.opts == op.opts else replace(op, opts=out.opts)

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
        try:
            return await self._answer_call()
        finally:
            if self.checkpoints is not None:
                await self.checkpoints.close()

    async def _answer_call(self) -> CallResult:
        self.loop = asyncio.get_running_loop()
        self.loop_token = anyio.lowlevel.current_token()
        try:
            result = await self._run_handler()
        except Exception as exc:  # a middleware hook failed: the function's error
            try:
                result = await self._function_result(Output(error=exc))
            except Exception:  # transform_output or finished failed on it too
                result = self._function_error(exc)
        try:
            await self.middleware.call("before_response", self.run_info, reverse=True)
        except Exception as exc:
            result = self._function_error(exc)
        return result

    async def _run_handler(self) -> CallResult:
        run_input = self._input()
        await self.middleware.call("transform_input", self.run_info, run_input)
        self._take_input(run_input)
        await self.middleware.call("before_memoization", self.run_info)
        if not self._memos:
            await self._end_memoization_outside()
        task = self._start_handler(run_input)
        try:
            await self._drive(task)
            if self._hook_error is None:
                # The handler may end without reaching its memos (code changed, a race).
                await self._end_memoization_outside()
            if self._executing:
                await self.middleware.call("after_execution", self.run_info, reverse=True)
            return await self._result(task)
        finally:
            await self._release(task)

    async def _end_memoization_outside(self) -> None:
        """``end_memoization`` outside user code: a failed hook fails the call."""
        try:
            await self.end_memoization()
        except StepInterrupt:
            pass
        if self._hook_error is not None:
            raise self._hook_error

    def _input(self) -> RunInput:
        steps: dict[str, StepMemo] = {}
        for hashed_id, memo in self._memos.items():
            if isinstance(memo, dict) and memo and set(memo) <= {"data", "error"}:
                error = memo.get("error")
                steps[hashed_id] = StepMemo(
                    data=memo.get("data"), error=error if isinstance(error, dict) else None
                )
                if error is not None and not isinstance(error, dict):
                    steps[hashed_id].error = {"name": "Error", "message": str(error)}
            else:
                steps[hashed_id] = StepMemo(data=memo)
        info = self.run_info
        return RunInput(
            event=info.event, events=info.events, steps=steps, logger=self.client.logger
        )

    def _take_input(self, run_input: RunInput) -> None:
        self.run_info.event = run_input.event
        self.run_info.events = run_input.events
        self._memos = {
            hashed_id: {"error": memo.error} if memo.error is not None else {"data": memo.data}
            for hashed_id, memo in run_input.steps.items()
        }

    def _start_handler(self, run_input: RunInput) -> asyncio.Task[Any]:
        event, events = run_input.event, run_input.events
        parents: list[Parent] = []
        if self.function.deferred:
            # The server's keys out of the event's data; who deferred the run, beside it.
            event = parent_of(event)[0]
            seen = [parent_of(e) for e in events]
            events, parents = [e for e, _ in seen], [p for _, p in seen]
        fields: dict[str, Any] = {
            "event": event,
            "events": events,
            "run_id": self.request.run_id,
            "attempt": self.request.attempt,
            "max_attempts": self.max_attempts,
            "logger": run_input.logger,
            "deps": Deps(run_input.deps),
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
        return self._target_running or thread_running or self._hooks_running

    async def _drive(self, task: asyncio.Task[Any]) -> None:
        while True:
            await self._next_progress(task)
            if task.done() or self.ran:
                return
            if self._busy():
                continue
            await self._settle(task)
            if task.done() or self.ran:
                return
            if self._busy():
                continue
            if await self._maybe_execute_now() and await self._checkpoint_ran():
                continue  # the handler goes on to its next step
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
            if task.done() or self.ran or self._busy():
                return
            if self._blocked_count != seen:
                quiet, seen = 0, self._blocked_count
            else:
                quiet += 1
        self._progress.clear()

    async def _maybe_execute_now(self) -> bool:
        """Immediate execution: the only new step is a run-type one, and the server allows it
        (and, when checkpointing, the call has not run past its ``max_runtime``). True when
        a checkpointing call ran it."""
        if self.target_step is not None or self.request.disable_immediate_execution:
            return False
        if len(self._new_steps) != 1:
            return False
        (new_step,) = self._new_steps.values()
        if new_step.execute is None:
            return False
        if self.checkpoints is not None and self.checkpoints.runtime_exceeded():
            return False
        self._new_steps.clear()
        await asyncio.create_task(new_step.execute(), context=new_step.context)
        return self.checkpoints is not None

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

    async def _result(self, task: asyncio.Task[Any]) -> CallResult:
        if self._hook_error is not None:
            raise self._hook_error
        if self._answer is not None:
            return self._answer
        if not task.done() or task.cancelled():
            return await self._ops_result()
        exc = task.exception()
        if exc is None:
            if self.ran or self._new_steps or self.target_step is not None:
                return await self._ops_result()
            answer = await self._settle_checkpoints()
            if answer is not None:
                return answer
            return await self._function_result(Output(data=task.result()))
        if isinstance(exc, Exception):
            if self.ran or self._new_steps:
                return await self._ops_result()
            answer = await self._flush_before_answer(with_lazy=True)
            if answer is not None:
                return answer
            return await self._function_result(Output(error=exc))
        if isinstance(exc, StepInterrupt | BranchStopped):
            return await self._ops_result()
        raise exc

    async def _function_result(self, out: Output) -> CallResult:
        """The function's own outcome, through ``transform_output`` and ``finished``."""
        await self.middleware.call("transform_output", self.run_info, out, reverse=True)
        result: CallResult | None = None
        if out.error is None:
            try:
                result = CallResult(status=200, body=dumps(out.data))
            except TypeError as error:
                out.error = OutputUnserializableError(
                    f"the function returned a non-JSON value: {error}"
                )
        if result is None:
            result = self._function_error(out.error or RuntimeError("no result"))
        if result.status == 200 or result.no_retry or self.request.attempt + 1 >= self.max_attempts:
            await self.middleware.call("finished", self.run_info, out, reverse=True)
        return self._with_lazy(result)

    async def _ops_result(self) -> CallResult:
        answer = await self._flush_before_answer()
        if answer is not None:
            return answer
        if self.ran:
            ops = [await self._step_op(ran) for ran in self.ran]
        else:
            ops = [await self._reported_op(new_step) for new_step in self._new_steps.values()]
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

    def _function_error(self, exc: BaseException) -> CallResult:
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
        return CallResult(status=500, body=dumps(error), no_retry=no_retry, retry_at=retry_at)


def _step_info(
    call: StepCall, kind: StepKind, input: tuple[Any, ...], *, memoized: bool = False
) -> StepInfo:
    return StepInfo(
        id=call.user_id,
        hashed_id=call.hashed_id,
        index=call.index,
        name=call.user_id,
        kind=kind,
        input=input,
        memoized=memoized,
    )


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
