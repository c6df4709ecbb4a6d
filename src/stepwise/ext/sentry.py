"""Sentry for function runs: performance spans, errors with their run's tags, flushed in time.

``SentryMiddleware()`` uses the Sentry SDK set up with ``sentry_sdk.init(...)`` (install
with ``pip install 'stepwise[sentry]'``). For every request of a run it records one
transaction, named after the function, with a ``memoization`` span (replaying memoized
steps), an ``execution`` span (new code) and one ``step`` span per step body run. The
transactions of one run share one trace (its ID is derived from the run ID), so Sentry
shows a run's requests side by side.

Errors of steps and of the function are captured with the tags of the official
``@inngest/middleware-sentry``: ``inngest.function.id``, ``inngest.function.name``,
``inngest.run.id``, ``inngest.attempt``, ``inngest.event.id``, ``inngest.event.name``
(and ``inngest.step.id`` for a step). Before each response the client is flushed (in a
worker thread, so the event loop goes on), since the process may be frozen or stopped
(serverless) once the answer has gone.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

try:
    import sentry_sdk
    from sentry_sdk.tracing import Span
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "stepwise.ext.sentry needs sentry-sdk: pip install 'stepwise[sentry]'"
    ) from exc

from ..sdk.middleware import CallNext, FunctionRun, Middleware, Output, RunInput, StepInfo


def trace_id_of(run_id: str) -> str:
    """The Sentry trace ID every request of a run shares (32 hex digits)."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:32]


class _Request:
    __slots__ = ("execution", "memoization", "tags", "transaction")

    def __init__(self, transaction: Span, tags: dict[str, str]) -> None:
        self.transaction = transaction
        self.tags = tags
        self.memoization: Span | None = None
        self.execution: Span | None = None


class SentryMiddleware(Middleware):
    """Transactions, spans and captured errors for every run; see the module docstring.

    ``flush_timeout``: how long (seconds) a response may wait for Sentry; ``0`` skips
    the flush (a long-lived server whose transport sends in the background anyway).
    """

    name = "stepwise/sentry"

    def __init__(self, *, flush_timeout: float = 2.0, capture_step_errors: bool = True) -> None:
        self.flush_timeout = flush_timeout
        self.capture_step_errors = capture_step_errors

    def _request(self, run: FunctionRun) -> _Request | None:
        request = run.state.get(self)
        return request if isinstance(request, _Request) else None

    def transform_input(self, run: FunctionRun, input: RunInput) -> None:
        event = input.event
        tags = {
            "inngest.client.id": run.client.app_id,
            "inngest.function.id": run.function.id,
            "inngest.function.name": run.function.name,
            "inngest.run.id": run.run_id,
            "inngest.attempt": str(run.attempt),
            "inngest.event.id": event.id or "",
            "inngest.event.name": event.name,
        }
        transaction = sentry_sdk.start_transaction(
            op="function.run",
            name=run.function.name,
            source="task",
            trace_id=trace_id_of(run.run_id),
        )
        for key, value in tags.items():
            transaction.set_tag(key, value)
        run.state[self] = _Request(transaction, tags)

    def before_memoization(self, run: FunctionRun) -> None:
        request = self._request(run)
        if request is not None:
            request.memoization = request.transaction.start_child(
                op="memoization", name="Memoization"
            )

    def after_memoization(self, run: FunctionRun) -> None:
        request = self._request(run)
        if request is not None and request.memoization is not None:
            request.memoization.finish()

    def before_execution(self, run: FunctionRun) -> None:
        request = self._request(run)
        if request is not None:
            request.execution = request.transaction.start_child(op="execution", name="Execution")

    def after_execution(self, run: FunctionRun) -> None:
        request = self._request(run)
        if request is not None and request.execution is not None:
            request.execution.finish()

    async def wrap_step(self, run: FunctionRun, step: StepInfo, call_next: CallNext) -> Any:
        request = self._request(run)
        if request is None:
            return await call_next()
        parent = request.execution or request.transaction
        span = parent.start_child(op="step", name=step.id)
        span.set_data("stepwise.step.kind", step.kind)
        span.set_data("stepwise.step.hashed_id", step.hashed_id)
        try:
            return await call_next()
        except BaseException:
            span.set_status("internal_error")
            raise
        finally:
            span.finish()

    def transform_output(self, run: FunctionRun, output: Output) -> None:
        request = self._request(run)
        if request is None or output.error is None or not isinstance(output.error, Exception):
            return
        tags = dict(request.tags)
        if output.step is not None:
            if not self.capture_step_errors:
                return
            tags["inngest.step.id"] = output.step.id
        else:
            request.transaction.set_status("internal_error")
        sentry_sdk.capture_exception(
            output.error,
            tags=tags,
            contexts={"trace": request.transaction.get_trace_context()},
        )

    async def before_response(self, run: FunctionRun) -> None:
        request = self._request(run)
        if request is None:
            return
        for span in (request.memoization, request.execution):
            if span is not None and span.timestamp is None:
                span.finish()
        request.transaction.finish()
        if self.flush_timeout > 0:
            await asyncio.to_thread(sentry_sdk.flush, self.flush_timeout)


__all__ = ["SentryMiddleware", "trace_id_of"]
