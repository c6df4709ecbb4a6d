"""``stepwise.ext.opentelemetry`` end to end: the test sends an event inside a span of its
own; the app's in-memory exporter then holds one trace with the test's span as root, the
run's spans under it, step spans under those, and the run started by a step's
``send_event`` under that step."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import stepwise
from stepwise.ext.opentelemetry import OpenTelemetryMiddleware
from support.harness import Stack, wait_until

# The SDK's middleware is under test, not the store: one backend is enough.
pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "otel_app", functions=2) as s:
        yield s


def test_one_trace_from_the_sender_through_runs_and_steps(stack: Stack) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sender = stepwise.Stepwise(
        "sender",
        is_production=False,
        event_key=stack.server.event_key,
        event_api_base_url=stack.server.url,
        api_base_url=stack.server.url,
        middleware=[OpenTelemetryMiddleware(provider)],
    )
    with provider.get_tracer("test").start_as_current_span("signup-request") as root:
        [event_id] = asyncio.run(sender.send({"name": "otel/first", "data": {}}))
    trace_id = f"{root.get_span_context().trace_id:032x}"
    root_id = f"{root.get_span_context().span_id:016x}"

    run = stack.server.wait_for_run(event_id)
    assert run["status"] == "Completed" and run["output"] == "A", stack.logs()
    [fanned] = stack.server.events("otel/second")
    follow_up = stack.server.wait_for_run(fanned["internal_id"])
    assert follow_up["output"] == "AB", stack.logs()

    def spans() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(
            stack.app.url.replace("/api/inngest", "/spans")
        ).json()
        # first: a, fan, return (3 requests); second: b, return (2 requests).
        return (
            found
            if len(
                [
                    s
                    for s in found
                    if "stepwise.run.id" in s["attributes"] and s["name"] in ("first", "second")
                ]
            )
            >= 5
            else []
        )

    spans_found = wait_until(spans, timeout=10, what="the run spans")
    assert {s["trace_id"] for s in spans_found} == {trace_id}
    by_id = {s["span_id"]: s for s in spans_found}

    def runs_of(name: str) -> list[dict[str, Any]]:
        return [
            s
            for s in spans_found
            if s["name"] == name and "stepwise.memoized_steps" in s["attributes"]
        ]

    first_runs, second_runs = runs_of("first"), runs_of("second")
    assert len(first_runs) == 3 and len(second_runs) == 2
    assert {s["parent_id"] for s in first_runs} == {root_id}
    for span in first_runs:
        assert span["attributes"]["stepwise.function.id"] == "traced-first"
        assert span["attributes"]["stepwise.run.id"] == run["run_id"]
        assert span["attributes"]["stepwise.event.name"] == "otel/first"
    assert sorted(s["attributes"]["stepwise.memoized_steps"] for s in first_runs) == [0, 1, 2]
    assert [s["attributes"].get("stepwise.run.finished") for s in first_runs].count(True) == 1

    def step(name: str) -> dict[str, Any]:
        [found] = [s for s in spans_found if s["attributes"].get("stepwise.step.id") == name]
        return found

    a, fan, b = step("a"), step("fan"), step("b")
    assert by_id[a["parent_id"]] in first_runs and by_id[fan["parent_id"]] in first_runs
    assert fan["attributes"]["stepwise.step.kind"] == "send_event"
    [inside] = [s for s in spans_found if s["name"] == "inside-a"]
    assert inside["parent_id"] == a["span_id"]
    # The run that fan's event started continues the trace under the fan step.
    assert {s["parent_id"] for s in second_runs} == {fan["span_id"]}
    assert by_id[b["parent_id"]] in second_runs
    assert exporter.get_finished_spans()[0].name == "signup-request"
