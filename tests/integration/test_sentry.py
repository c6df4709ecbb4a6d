"""``stepwise.ext.sentry`` end to end, with a Sentry transport that records envelopes:
a transaction per request in one trace per run, memoization, execution and step spans,
errors tagged with function, run, attempt and event, and everything flushed before the
response goes back to the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepwise.ext.sentry import trace_id_of
from support.harness import Stack

# The SDK's middleware is under test, not the store: one backend is enough.
pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp(f"sentry-{backend}")
    with Stack(tmp, "sentry_app", server_args=["--retry-interval", "1"], functions=2) as s:
        yield s


def of_run(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """Transactions and error events of one run, in the order they were flushed."""
    return [
        e
        for e in stack.app.ledger_of("sentry")
        if e["payload"].get("tags", {}).get("inngest.run.id") == run_id
    ]


def test_a_transaction_per_request_with_spans_in_one_trace(stack: Stack) -> None:
    event_id = stack.server.send("sentry/steps")
    run = stack.server.wait_for_run(event_id, timeout=60)
    assert run["status"] == "Completed" and run["output"] == 2, stack.logs()
    items = of_run(stack, run["run_id"])
    transactions = [i["payload"] for i in items if i["type"] == "transaction"]
    # a; b fails; b again; the function returns.
    assert len(transactions) == 4
    for transaction in transactions:
        assert transaction["transaction"] == "Steps"
        assert transaction["contexts"]["trace"]["trace_id"] == trace_id_of(run["run_id"])
        assert transaction["contexts"]["trace"]["op"] == "function.run"
        assert transaction["tags"]["inngest.function.id"] == "sentried-steps"
        assert transaction["tags"]["inngest.event.id"] == event_id
        assert transaction["tags"]["inngest.event.name"] == "sentry/steps"
        ops = sorted(span["op"] for span in transaction["spans"] if span["op"] != "step")
        assert ops == ["execution", "memoization"]
        execution = next(s for s in transaction["spans"] if s["op"] == "execution")
        for step in (s for s in transaction["spans"] if s["op"] == "step"):
            assert step["parent_span_id"] == execution["span_id"]
    steps = [
        (t["tags"]["inngest.attempt"], span["description"], span.get("status"))
        for t in transactions
        for span in t["spans"]
        if span["op"] == "step"
    ]
    assert steps == [("0", "a", None), ("0", "b", "internal_error"), ("1", "b", None)]

    [error] = [i["payload"] for i in items if i["type"] == "event"]
    assert error["exception"]["values"][-1]["value"] == "b broke once"
    assert {k: v for k, v in error["tags"].items() if k.startswith("inngest.")} == {
        "inngest.client.id": "sentried",
        "inngest.function.id": "sentried-steps",
        "inngest.function.name": "Steps",
        "inngest.run.id": run["run_id"],
        "inngest.attempt": "0",
        "inngest.event.id": event_id,
        "inngest.event.name": "sentry/steps",
        "inngest.step.id": "b",
    }
    assert error["contexts"]["trace"]["trace_id"] == trace_id_of(run["run_id"])


def test_function_errors_are_captured_and_every_request_is_flushed_before_its_response(
    stack: Stack,
) -> None:
    run = stack.server.wait_for_run(stack.server.send("sentry/fail"), timeout=60)
    assert run["status"] == "Failed", stack.logs()
    items = sorted(of_run(stack, run["run_id"]), key=lambda i: str(i["type"]), reverse=True)
    assert [i["type"] for i in items] == ["transaction", "event"]
    transaction, error = (i["payload"] for i in items)
    assert error["exception"]["values"][-1]["value"] == "the function gave up"
    assert error["tags"]["inngest.function.id"] == "sentried-fails"
    assert error["tags"]["inngest.attempt"] == "0"
    assert "inngest.step.id" not in error["tags"]
    assert transaction["contexts"]["trace"]["status"] == "internal_error"
    # The transport writes only when flushed: each call's transaction precedes its answer.
    sequence = [
        "response" if line["kind"] == "response" else line["type"]
        for line in stack.app.executions()
        if line["kind"] == "response" or line["type"] == "transaction"
    ]
    assert sequence == ["transaction", "response"] * (len(sequence) // 2)
    assert len(sequence) >= 2
