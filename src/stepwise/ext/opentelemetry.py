"""OpenTelemetry spans for function runs and steps, in the trace of whoever sent the event.

``OpenTelemetryMiddleware()`` (``pip install 'stepwise[otel]'``) records, with the tracer
provider you configured (or the one passed in):

* on every event the client sends, the current trace context, as W3C ``traceparent``
  and ``tracestate`` in the event's ``data._inngest`` (the server keeps these two fields
  of ``_inngest`` and drops the rest);
* for every request of a run, a ``function.run`` span (named after the function) whose
  parent is the span that sent the triggering event, with the run's attributes;
* one span per step body run, a child of the run's span; it is current while the body
  runs, so spans the body makes, and events it sends, belong to the same trace.

So one trace shows ``send → run → steps → send → run...``. Each request of a run is a
span of its own (a run outlives any one process), all under the sender's span.
"""

from __future__ import annotations

from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "stepwise.ext.opentelemetry needs OpenTelemetry: pip install 'stepwise[otel]'"
    ) from exc

from .._version import __version__
from ..protocol.events import trace_fields
from ..sdk.event import Event
from ..sdk.middleware import (
    CallNext,
    FunctionRun,
    Middleware,
    Output,
    RunInput,
    SendInput,
    StepInfo,
)

TRACE_META = "_inngest"


def parent_context(event: Event[Any]) -> otel_context.Context | None:
    """The sender's trace context carried in an event, or ``None``."""
    data = event.data if isinstance(event.data, dict) else {}
    carrier = trace_fields(data.get(TRACE_META))
    if "traceparent" not in carrier:
        return None
    return propagate.extract(carrier)


class _Request:
    __slots__ = ("span", "token")

    def __init__(self, span: Span, token: object) -> None:
        self.span = span
        self.token = token


class OpenTelemetryMiddleware(Middleware):
    """Spans per run request and per step, trace context carried by events."""

    name = "stepwise/opentelemetry"

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self.tracer: Tracer = trace.get_tracer(
            "stepwise", __version__, tracer_provider=tracer_provider
        )

    # -- sending ---------------------------------------------------------------------

    def transform_send_input(self, send: SendInput) -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        fields = trace_fields(carrier)
        if not fields:
            return
        for event in send.events:
            data = event.get("data")
            if isinstance(data, dict):
                meta = data.get(TRACE_META)
                event["data"] = {
                    **data,
                    TRACE_META: {**(meta if isinstance(meta, dict) else {}), **fields},
                }

    # -- running ---------------------------------------------------------------------

    def transform_input(self, run: FunctionRun, input: RunInput) -> None:
        event = input.event
        attributes: dict[str, AttributeValue] = {
            "stepwise.app.id": run.client.app_id,
            "stepwise.function.id": run.function.id,
            "stepwise.run.id": run.run_id,
            "stepwise.attempt": run.attempt,
            "stepwise.event.name": event.name,
            "stepwise.event.id": event.id or "",
            "stepwise.memoized_steps": len(input.steps),
        }
        span = self.tracer.start_span(
            run.function.name,
            context=parent_context(event),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        # Current for the rest of the request: the handler (a task or a thread started
        # after this) sees it, so spans made in user code nest under the run's.
        token = otel_context.attach(trace.set_span_in_context(span))
        run.state[self] = _Request(span, token)

    def after_memoization(self, run: FunctionRun) -> None:
        request = run.state.get(self)
        if isinstance(request, _Request):
            request.span.add_event("memoization.done")

    async def wrap_step(self, run: FunctionRun, step: StepInfo, call_next: CallNext) -> Any:
        request = run.state.get(self)
        parent = trace.set_span_in_context(request.span) if isinstance(request, _Request) else None
        attributes: dict[str, AttributeValue] = {
            "stepwise.run.id": run.run_id,
            "stepwise.step.id": step.id,
            "stepwise.step.hashed_id": step.hashed_id,
            "stepwise.step.kind": step.kind,
            "stepwise.attempt": run.attempt,
        }
        with self.tracer.start_as_current_span(
            step.id, context=parent, attributes=attributes, record_exception=True
        ):
            return await call_next()

    def transform_output(self, run: FunctionRun, output: Output) -> None:
        request = run.state.get(self)
        if not isinstance(request, _Request) or output.step is not None or output.error is None:
            return
        request.span.record_exception(output.error)
        request.span.set_status(Status(StatusCode.ERROR, str(output.error)))

    def finished(self, run: FunctionRun, output: Output) -> None:
        request = run.state.get(self)
        if isinstance(request, _Request):
            request.span.set_attribute("stepwise.run.finished", True)

    def before_response(self, run: FunctionRun) -> None:
        request = run.state.pop(self, None)
        if isinstance(request, _Request):
            request.span.end()
            otel_context.detach(request.token)  # type: ignore[arg-type]


__all__ = ["OpenTelemetryMiddleware", "parent_context"]
