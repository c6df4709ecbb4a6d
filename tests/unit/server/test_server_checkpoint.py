"""Checkpoints (4.x reference §1): which dispatch a checkpoint names, and what it saves."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiohttp import web
from server_support import NOW, RUN_ID, function_record, job, make_executor, reply, run_state, spec

from stepwise.protocol import GeneratorOp, is_ulid
from stepwise.server.engine.checkpoint import CheckpointRejected, defers_to_save, steps_to_save
from stepwise.server.engine.dispatch import fence_of, is_stale, queue_item_ref
from stepwise.server.engine.executor import MAX_STEP_OUTPUT
from stepwise.server.store.records import (
    DeferStatus,
    DispatchFence,
    HistoryEntry,
    HistoryKind,
    JobKind,
    NewJob,
    Settled,
)


def ops(*raw: dict[str, Any]) -> list[GeneratorOp]:
    return [GeneratorOp.from_wire(r) for r in raw]


def test_a_queue_item_reference_reads_back_as_its_job() -> None:
    assert fence_of(queue_item_ref(12345), 3) == DispatchFence(job_id=12345, generation=3)


@pytest.mark.parametrize(
    ("queue_item", "generation"),
    [
        (None, 3),  # no queue item: nothing to look up
        ("12", None),  # no generation: nothing to compare
        ("shard:12", 3),  # not a reference of ours
        ("-12", 3),
        ("١٢", 3),  # digits, but not ASCII ones
        (str(2**63), 3),  # larger than any job id
        ("9" * 4000, 3),
    ],
)
def test_a_checkpoint_that_names_no_dispatch_of_ours_is_not_fenced(
    queue_item: str | None, generation: int | None
) -> None:
    assert fence_of(queue_item, generation) is None


def test_generation_zero_is_a_generation() -> None:
    # A job's first dispatch is generation 0: its checkpoints are fenced like any other.
    assert fence_of("7", 0) == DispatchFence(7, 0)


@pytest.mark.parametrize(
    ("current", "stale"),
    [(2, False), (3, True), (1, True), (None, True)],
)
def test_a_dispatch_is_stale_once_its_job_moved_on_or_is_gone(
    current: int | None, stale: bool
) -> None:
    assert is_stale(DispatchFence(job_id=7, generation=2), current) is stale


def test_step_runs_are_saved_in_order_with_their_data_wrapped() -> None:
    saved = steps_to_save(
        ops(
            {"op": "StepRun", "id": "h-a", "name": "a", "displayName": "First", "data": {"x": 1}},
            {"op": "StepPlanned", "id": "h-p", "name": "p"},
            {"op": "StepRun", "id": "h-b", "name": "b", "userland": {"id": "b"}, "data": None},
            {"op": "Step", "id": "h-c", "data": {"data": "already wrapped"}},
        ),
        NOW,
        body_bytes=1000,
    )
    assert saved == [
        Settled(
            "h-a",
            {"data": {"x": 1}},
            (HistoryEntry(HistoryKind.STEP_COMPLETED, NOW, "h-a", "First", 0),),
        ),
        Settled(
            "h-b", {"data": None}, (HistoryEntry(HistoryKind.STEP_COMPLETED, NOW, "h-b", "b", 0),)
        ),
        Settled(
            "h-c",
            {"data": "already wrapped"},
            (HistoryEntry(HistoryKind.STEP_COMPLETED, NOW, "h-c", None, 0),),
        ),
    ]


def test_an_empty_checkpoint_saves_nothing() -> None:
    # A flush forced by the SDK's timer with nothing buffered.
    assert steps_to_save([], NOW, body_bytes=2) == []


@pytest.mark.parametrize(
    "op", ["Sleep", "WaitForEvent", "InvokeFunction", "StepError", "RunComplete"]
)
def test_a_checkpoint_holds_only_results_of_steps_that_ran(op: str) -> None:
    with pytest.raises(CheckpointRejected) as caught:
        steps_to_save(ops({"op": op, "id": "h", "name": "1s"}), NOW, body_bytes=100)
    assert (caught.value.status, caught.value.code) == (400, "unsupported_op")


def test_defers_ride_along_with_the_steps_of_a_checkpoint() -> None:
    checkpoint = ops(
        {"op": "StepRun", "id": "h-a", "name": "a", "data": 1},
        {
            "op": "DeferAdd",
            "id": "h-d",
            "name": "d",
            "opts": {"fn_slug": "app-later", "input": {"to": "x"}},
            "userland": {"id": "d"},
        },
        {
            "op": "DeferAbort",
            "id": "h-x",
            "opts": {"fn_slug": "app-later", "target_hashed_id": "h-e"},
        },
    )
    assert [s.step_id for s in steps_to_save(checkpoint, NOW, body_bytes=100)] == ["h-a"]
    changes = defers_to_save(checkpoint, NOW)
    assert [(c.record.hashed_id, c.record.status, c.abort) for c in changes] == [
        ("h-d", DeferStatus.AFTER_RUN, False),
        ("h-e", DeferStatus.ABORTED, True),
    ]
    assert changes[0].record.input == {"to": "x"}


def test_a_defer_without_its_function_is_refused() -> None:
    with pytest.raises(CheckpointRejected) as caught:
        defers_to_save(ops({"op": "DeferAdd", "id": "h", "opts": {"input": {}}}), NOW)
    assert (caught.value.status, caught.value.code) == (400, "invalid_defer")


def test_a_step_without_an_id_is_refused() -> None:
    with pytest.raises(CheckpointRejected) as caught:
        steps_to_save(ops({"op": "StepRun", "data": 1}), NOW, body_bytes=100)
    assert (caught.value.status, caught.value.code) == (400, "invalid_checkpoint")


def test_an_output_over_the_step_limit_is_refused() -> None:
    big = "x" * MAX_STEP_OUTPUT
    with pytest.raises(CheckpointRejected) as caught:
        steps_to_save(
            ops({"op": "StepRun", "id": "h", "data": big}), NOW, body_bytes=MAX_STEP_OUTPUT + 100
        )
    assert (caught.value.status, caught.value.code) == (413, "step_output_too_large")


def test_the_fallback_answer_saves_every_step_and_calls_once() -> None:
    # The SDK could not checkpoint, so the call's answer carries the steps it ran (§1.5).
    executor, _ = make_executor(function_record())
    body = [
        {"op": "StepRun", "id": "h-a", "name": "a", "data": 1},
        {"op": "StepRun", "id": "h-b", "name": "b", "data": 2},
    ]
    t = executor.handle_reply(job(), run_state(), spec(), reply(206, body), NOW)
    assert [(s.step_id, s.memo) for s in t.settled] == [("h-a", {"data": 1}), ("h-b", {"data": 2})]
    assert t.continue_with == NewJob(
        run_id=RUN_ID, kind=JobKind.CALL, run_at=NOW, key=f"discovery:{RUN_ID}:h-b"
    )
    assert t.planned == [] and t.new_jobs == []


async def test_a_call_names_its_function_job_and_generation() -> None:
    """What the JS 4.x SDK reads from a call (§1.3, §6.1, §6.2), over a real socket."""
    seen: list[tuple[dict[str, str], Any]] = []

    async def app(request: web.Request) -> web.Response:
        seen.append(({k.lower(): v for k, v in request.headers.items()}, await request.json()))
        return web.json_response([], status=206, headers={"X-Inngest-SDK": "inngest-js:v4.24.0"})

    server = web.Application()
    server.router.add_post("/api/inngest", app)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    record = dataclasses.replace(
        function_record(retries=0), url=f"http://127.0.0.1:{port}/api/inngest?fnId=app-fn"
    )
    executor, _ = make_executor(record)
    try:
        for generation in (0, 3):
            await executor.execute(dataclasses.replace(job(), generation=generation), run_state())
    finally:
        await executor.driver.close()
        await runner.cleanup()

    (first_headers, _), (headers, body) = seen
    assert headers["x-inngest-job-id"] == "7"
    assert (first_headers["x-inngest-generation-id"], headers["x-inngest-generation-id"]) == (
        "0",
        "3",
    )
    assert is_ulid(headers["x-request-id"])
    assert headers["x-request-id"] != first_headers["x-request-id"]  # one per dispatch
    ctx = body["ctx"]
    assert (ctx["fn_id"], ctx["qi_id"], ctx["max_attempts"]) == (record.id, "7", 1)
    assert ctx["disable_immediate_execution"] is False
    assert body["event"]["user"] == {} and all("user" in e for e in body["events"])
