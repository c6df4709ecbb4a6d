"""Defers: stored once per id with the transition (or checkpoint) that carries them,
aborted in place, bounded per run, and read back with the run's state."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest
from _clock import T0

from stepwise.server.store.records import (
    Checkpoint,
    CheckpointOutcome,
    DeferChange,
    DeferRecord,
    DeferStatus,
    DispatchFence,
    HistoryEntry,
    HistoryKind,
    Ingest,
    LeaseLost,
    RunStatus,
    RunUpdate,
)

if TYPE_CHECKING:
    from conftest import World


def add(
    hashed_id: str, *, status: DeferStatus = DeferStatus.AFTER_RUN, **limits: int
) -> DeferChange:
    record = DeferRecord(
        hashed_id,
        "shop-later",
        status,
        user_id=hashed_id,
        input={"n": hashed_id} if status is DeferStatus.AFTER_RUN else None,
        meta={"sessions": {"org": "acme"}},
    )
    told = HistoryEntry(HistoryKind.DEFER_ADDED, T0, hashed_id, hashed_id)
    refused = HistoryEntry(
        HistoryKind.DEFER_REJECTED, T0, hashed_id, hashed_id, None, {"reason": "limit"}
    )
    return DeferChange(
        record,
        T0,
        history=(told,),
        max_count=limits.get("max_count", 20),
        max_input_bytes=limits.get("max_input_bytes", 4 * 1024 * 1024),
        refused=(refused,),
    )


def abort(hashed_id: str) -> DeferChange:
    record = DeferRecord(hashed_id, "shop-later", DeferStatus.ABORTED, user_id=hashed_id)
    told = HistoryEntry(HistoryKind.DEFER_ABORTED, T0, hashed_id, hashed_id)
    return DeferChange(record, T0, abort=True, history=(told,))


async def defer_history(world: World, run_id: str) -> list[tuple[HistoryKind, str | None]]:
    return [
        (h.kind, h.step_id)
        for h in await world.store.run_history(run_id)
        if h.kind.value.startswith("Defer")
    ]


async def test_a_defer_is_stored_once_with_its_transition_and_read_with_the_run(
    world: World,
) -> None:
    run, job = await world.running()
    await world.store.commit(world.done(job, defers=[add("a"), add("b"), add("a")]))

    state = await world.store.load_run_state(run.id)
    assert state is not None
    assert [(d.hashed_id, d.status, d.input) for d in state.defers] == [
        ("a", DeferStatus.AFTER_RUN, {"n": "a"}),
        ("b", DeferStatus.AFTER_RUN, {"n": "b"}),
    ]
    assert state.defers[0].meta == {"sessions": {"org": "acme"}}
    assert await world.store.run_defers(run.id) == state.defers
    assert await defer_history(world, run.id) == [
        (HistoryKind.DEFER_ADDED, "a"),
        (HistoryKind.DEFER_ADDED, "b"),
    ]


async def test_an_abort_stops_a_defer_and_records_one_not_yet_added(world: World) -> None:
    run, job = await world.running()
    # An abort of one aborted already, and an add after an abort, change nothing.
    changes = [add("a"), abort("a"), abort("z"), add("z"), abort("a")]
    await world.store.commit(world.done(job, defers=changes))

    defers = await world.store.run_defers(run.id)
    assert [(d.hashed_id, d.status) for d in defers] == [
        ("a", DeferStatus.ABORTED),
        ("z", DeferStatus.ABORTED),
    ]
    assert await defer_history(world, run.id) == [
        (HistoryKind.DEFER_ADDED, "a"),
        (HistoryKind.DEFER_ABORTED, "a"),
        (HistoryKind.DEFER_ABORTED, "z"),
    ]


async def test_defers_past_the_run_limit_are_refused_and_said_so(world: World) -> None:
    run, job = await world.running()
    changes = [add(str(i), max_count=3) for i in range(5)]
    await world.store.commit(world.done(job, defers=changes))

    assert [d.hashed_id for d in await world.store.run_defers(run.id)] == ["0", "1", "2"]
    assert await defer_history(world, run.id) == [
        *((HistoryKind.DEFER_ADDED, str(i)) for i in range(3)),
        (HistoryKind.DEFER_REJECTED, "3"),
        (HistoryKind.DEFER_REJECTED, "4"),
    ]


async def test_defer_inputs_past_the_run_limit_are_refused(world: World) -> None:
    run, job = await world.running()
    await world.store.commit(
        world.done(job, defers=[add(str(i), max_input_bytes=30) for i in range(4)])
    )
    # Each input is 9 bytes of JSON ({"n":"0"}): three fit in 30.
    assert [d.hashed_id for d in await world.store.run_defers(run.id)] == ["0", "1", "2"]


async def test_a_checkpoint_stores_its_defers_with_its_steps(world: World) -> None:
    run, job = await world.running()
    cp = Checkpoint(
        run.id,
        [],
        HistoryEntry(HistoryKind.RUN_STARTED, T0),
        DispatchFence(job.id, job.generation),
        defers=[add("a"), add("r", status=DeferStatus.REJECTED)],
    )
    assert await world.store.checkpoint(cp) is CheckpointOutcome.SAVED
    assert [(d.hashed_id, d.status) for d in await world.store.run_defers(run.id)] == [
        ("a", DeferStatus.AFTER_RUN),
        ("r", DeferStatus.REJECTED),
    ]


async def test_a_stale_checkpoint_stores_no_defer(world: World) -> None:
    run, job = await world.running()
    cp = Checkpoint(
        run.id,
        [],
        HistoryEntry(HistoryKind.RUN_STARTED, T0),
        DispatchFence(job.id, job.generation + 1),
        defers=[add("a")],
    )
    assert await world.store.checkpoint(cp) is CheckpointOutcome.STALE
    assert await world.store.run_defers(run.id) == []


async def test_a_lost_lease_stores_no_defer(world: World) -> None:
    run, job = await world.running()
    stolen = dataclasses.replace(job, lease="not-ours")
    with pytest.raises(LeaseLost):
        await world.store.commit(world.done(stolen, defers=[add("a")]))
    assert await world.store.run_defers(run.id) == []


async def test_an_event_keeps_its_meta(world: World) -> None:
    event = dataclasses.replace(
        world.make.event("shop/order.placed"), meta={"sessions": {"org": "acme", "conv": "42"}}
    )
    run = world.make.run(world.fn, event)
    await world.store.ingest(Ingest(events=[event], runs=[run]))
    stored = await world.store.get_event(event.internal_id)
    assert stored is not None and stored.meta == {"sessions": {"org": "acme", "conv": "42"}}
    state = await world.store.load_run_state(run.id)
    assert state is not None
    assert state.events[0].to_wire()["meta"] == {"sessions": {"org": "acme", "conv": "42"}}


async def test_metadata_can_be_added_to_a_run_that_ended_but_not_to_none(world: World) -> None:
    run, job = await world.running()
    ended = RunUpdate(status=RunStatus.COMPLETED, output=1, has_output=True, ended_at=T0)
    await world.store.commit(world.done(job, run_update=ended, clear_run_jobs=True))
    entry = HistoryEntry(HistoryKind.METADATA, T0, None, None, None, {"metadata": {"kind": "x"}})
    assert await world.store.add_history(run.id, [entry]) is True
    assert await world.store.add_history("01ARZ3NDEKTSV4RRFFQ69G5FAV", [entry]) is False
    assert (await world.store.run_history(run.id))[-1] == entry
