"""A rerun: a new run that names its original and starts with results seeded from it,
written with the run in one transaction, or not at all."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from _clock import MINUTE, T0
from _steps import results as settled_as

from stepwise.server.store.records import (
    HistoryEntry,
    HistoryKind,
    Ingest,
    JobKind,
    NewRun,
    RunStatus,
    Settled,
    StepMemo,
)

if TYPE_CHECKING:
    from conftest import Backend, World


def seeded(*pairs: tuple[str, object]) -> tuple[Settled, ...]:
    return tuple(
        Settled(
            step_id,
            memo,
            (HistoryEntry(HistoryKind.STEP_COMPLETED, T0 + 5, step_id, f"name-{step_id}"),),
        )
        for step_id, memo in pairs
    )


def rerun_of(original: NewRun, name: str, **changes: Any) -> NewRun:
    """A rerun of ``original``, with a key of its own, as the engine plans one."""
    run_id = f"run-rerun-{name}"
    return replace(
        original,
        id=run_id,
        idempotency_key=f"rerun:{run_id}",
        original_run_id=original.id,
        **changes,
    )


async def test_a_rerun_names_its_original_and_starts_with_its_seeded_steps_in_order(
    backend: Backend, world: World
) -> None:
    store = world.store
    original = await world.start_run()
    rerun = rerun_of(
        original,
        "0001",
        created_at=T0 + 5,
        seed_steps=seeded(("b", {"data": 2}), ("a", {"data": 1})),
    )
    commits_before = backend.commits(store)

    assert await store.ingest(Ingest(runs=[rerun])) == [rerun.id]

    if (after := backend.commits(store)) is not None:
        assert commits_before is not None and after - commits_before == 1
    record = await store.get_run(rerun.id)
    assert record is not None
    assert record.original_run_id == original.id
    assert record.status is RunStatus.SCHEDULED
    assert record.event_ids == original.event_ids
    untouched = await store.get_run(original.id)
    assert untouched is not None and untouched.original_run_id is None
    state = await store.load_run_state(rerun.id)
    assert state is not None
    # The order given is kept, whatever the step ids sort as.
    assert state.steps == [StepMemo("b", 0, {"data": 2}), StepMemo("a", 1, {"data": 1})]
    assert [(h.kind, h.step_id, h.name) for h in await store.run_history(rerun.id)] == [
        (HistoryKind.STEP_COMPLETED, "b", "name-b"),
        (HistoryKind.STEP_COMPLETED, "a", "name-a"),
    ]
    # Both runs of the event are listed with it.
    assert [r.id for r in await store.runs_for_event(original.event_ids[0])] == sorted(
        [original.id, rerun.id]
    )
    # The rerun has its first call due, like any new run.
    calls = [j for j in await store.lease_due_jobs(T0 + 5, 100, MINUTE) if j.run_id == rerun.id]
    assert [(j.kind, j.step_id) for j in calls] == [(JobKind.CALL, "step")]


async def test_steps_settled_by_a_rerun_come_after_its_seeded_ones(world: World) -> None:
    store = world.store
    original = await world.start_run()
    rerun = rerun_of(original, "0002", seed_steps=seeded(("a", {"data": 1})))
    await store.ingest(Ingest(runs=[rerun]))
    [job] = [j for j in await store.lease_due_jobs(T0, 100, MINUTE) if j.run_id == rerun.id]

    await store.commit(world.done(job, settled=settled_as(("a", {"data": "again"}), ("b", 2))))

    state = await store.load_run_state(rerun.id)
    assert state is not None
    # A seeded result is a result: the first one wins, as for any step.
    assert state.steps == [StepMemo("a", 0, {"data": 1}), StepMemo("b", 1, 2)]


async def test_a_rerun_that_fails_half_way_writes_nothing(world: World) -> None:
    store = world.store
    original = await world.start_run()
    # The same step twice cannot be stored: the run's insert must go with it.
    broken = rerun_of(original, "0003", seed_steps=seeded(("a", 1), ("a", 2)))

    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own integrity error
        await store.ingest(Ingest(runs=[broken]))

    assert await store.get_run(broken.id) is None
    assert await store.load_run_state(broken.id) is None
    assert await store.run_history(broken.id) == []
    assert await store.list_steps(broken.id) == []
    assert [r.id for r in await store.runs_for_event(original.event_ids[0])] == [original.id]
    due = await store.lease_due_jobs(T0, 100, MINUTE)
    assert [j.run_id for j in due] == [original.id]


async def test_a_skipped_rerun_is_stored_without_its_seeded_steps(world: World) -> None:
    store = world.store
    original = await world.start_run()
    skipped = rerun_of(original, "0004", skip_reason="rate_limited", seed_steps=seeded(("a", 1)))

    assert await store.ingest(Ingest(runs=[skipped])) == [skipped.id]

    record = await store.get_run(skipped.id)
    assert record is not None
    assert (record.status, record.skip_reason, record.original_run_id) == (
        RunStatus.SKIPPED,
        "rate_limited",
        original.id,
    )
    assert await store.list_steps(skipped.id) == []
