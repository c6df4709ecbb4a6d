"""One call request's run of a function: replay memoized steps, then find or run new work.

Every call re-runs the handler from the top. Each step call gets its wire ID from a
``StepIdCounter`` and either returns its memo (replay) or is new. A new step is either
executed here (immediate execution on discovery, or the targeted step) or reported to
the server as an op; either way user code is then stopped with ``StepInterrupt``.

New ops are collected in a list rather than returned one at a time, so that steps
started together (``asyncio.gather``) can later all land in one 206 response.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, cast

import anyio.to_thread

from ..errors import NonRetriableError, RetryAfterError, StepError
from ..protocol import GeneratorOp, Opcode, StepIdCounter, dumps
from .call import CallRequest
from .context import Context, SyncContext
from .logger import ReplayAwareLogger
from .step import Step, SyncStep

if TYPE_CHECKING:
    from .client import Stepwise
    from .function import AsyncHandler, Function, SyncHandler


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
    """The state of one call: memos, the step-ID counter, and the ops found so far."""

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
        self.retry_at: datetime | None = None
        self.logger = ReplayAwareLogger(logger, self.is_replaying)
        self._memos = request.steps
        self._counter = StepIdCounter()
        self._consumed: set[str] = set()
        self._interrupted = False
        self._target_memoized = False

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
        hashed_id, index = self._counter.next_id(user_id)
        memo = self._memos.get(hashed_id, NO_MEMO)
        if memo is not NO_MEMO:
            self._consumed.add(hashed_id)
            if hashed_id == self.target_step:
                self._target_memoized = True
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

    def ensure_executing(self, call: StepCall, opts: dict[str, Any] | None = None) -> None:
        """Return if this run-type step is to run now; otherwise plan it and stop."""
        if self.target_step is not None:
            if call.hashed_id == self.target_step:
                return
        elif not self.request.disable_immediate_execution:
            return
        self.report(call, call.op(Opcode.STEP_PLANNED, opts=opts))

    def report(self, call: StepCall, op: GeneratorOp) -> NoReturn:
        """Hand a new step to the server and stop user code.

        A targeted call may only answer for its target, so other new steps just stop it.
        """
        if self.target_step is None:
            self.ops.append(op)
        self._interrupt()

    def succeed(self, call: StepCall, output: Any, opts: dict[str, Any] | None = None) -> NoReturn:
        try:
            dumps(output)
        except TypeError as exc:
            self.fail(
                call,
                OutputUnserializableError(
                    f"step {call.user_id!r} returned a non-JSON value: {exc}"
                ),
                opts,
            )
        self.ops.append(call.op(Opcode.STEP_RUN, opts=opts, data=output, has_data=True))
        self._interrupt()

    def fail(self, call: StepCall, exc: Exception, opts: dict[str, Any] | None = None) -> NoReturn:
        final = isinstance(exc, NonRetriableError) or self.request.attempt + 1 >= self.max_attempts
        if isinstance(exc, RetryAfterError) and not final:
            self.retry_at = exc.retry_at
        opcode = Opcode.STEP_FAILED if final else Opcode.STEP_ERROR
        self.ops.append(call.op(opcode, opts=opts, error=error_to_wire(exc)))
        self._interrupt()

    def _interrupt(self) -> NoReturn:
        self._interrupted = True
        raise StepInterrupt

    # -- running the handler ---------------------------------------------------------

    async def run(self) -> CallResult:
        events = self.request.typed_events()
        run_id, attempt = self.request.run_id, self.request.attempt
        handler = self.function.handler
        try:
            fields: dict[str, Any] = {
                "event": events[0],
                "events": events,
                "run_id": run_id,
                "attempt": attempt,
                "max_attempts": self.max_attempts,
                "logger": self.logger,
            }
            if self.function.is_async:
                ctx = Context(**fields, step=Step(self))
                output = await cast("AsyncHandler", handler)(ctx)
            else:
                # A def handler may block; run it off the event loop.
                sync_ctx = SyncContext(**fields, step=SyncStep(self))
                output = await anyio.to_thread.run_sync(cast("SyncHandler", handler), sync_ctx)
        except StepInterrupt:
            return self._ops_result()
        except Exception as exc:
            if self.ops:
                return self._ops_result()
            return self._function_error(exc)
        if self.ops or self.target_step is not None:
            return self._ops_result()
        try:
            body = dumps(output)
        except TypeError as exc:
            return self._function_error(
                OutputUnserializableError(f"the function returned a non-JSON value: {exc}")
            )
        return CallResult(status=200, body=body)

    def _ops_result(self) -> CallResult:
        if not self.ops and self.target_step is not None and not self._target_memoized:
            error = {
                "name": "StepNotFoundError",
                "message": f"step {self.target_step} was not reached by this run",
                "code": "step_not_found",
            }
            return CallResult(status=500, body=dumps(error))
        # An empty list (a targeted step already memoized) is the protocol's "nothing to do".
        body = dumps([op.to_wire() for op in self.ops])
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
        return CallResult(status=500, body=dumps(error), no_retry=no_retry, retry_at=retry_at)
