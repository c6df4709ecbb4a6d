"""Checkpoints: steps saved while their call is still open, fenced by the call's dispatch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from _clock import MINUTE, T0
from _steps import call, due_calls, plan_batch, results

from stepwise.server.store.records import (
    Checkpoint,
    CheckpointOutcome,
    DispatchFence,
    HistoryEntry,
    HistoryKind,
    Job,
    RunStatus,
    RunUpdate,
    Settled,
)

if TYPE_CHECKING:
    from conftest import World

STARTED = HistoryEntry(HistoryKind.RUN_STARTED, T0)


def completed(step_id: str, memo: object) -> Settled:
    return Settled(step_id, memo, (HistoryEntry(HistoryKind.STEP_COMPLETED, T0, step_id, step_id),))


def fence(job: Job, generation: int | None = None) -> DispatchFence:
    return DispatchFence(job.id, job.generation if generation is None else generation)


async def test_a_checkpoint_saves_its_steps_in_order_and_adds_no_call(world: World) -> None:
    run, job = await world.running()
    cp = Checkpoint(
        run.id,
        [completed("a", {"data": 1}), completed("b", {"data": 2})],
        STARTED,
        fence(job),
    )
    assert await world.store.checkpoint(cp) is CheckpointOutcome.SAVED

    assert await world.store.list_steps(run.id) == [("a", {"data": 1}), ("b", {"data": 2})]
    assert await due_calls(world, run.id) == []  # the open call goes on; nothing else is due
    history = [(h.kind, h.step_id) for h in await world.store.run_history(run.id)]
    assert history == [
        (HistoryKind.RUN_STARTED, None),
        (HistoryKind.STEP_COMPLETED, "a"),
        (HistoryKind.STEP_COMPLETED, "b"),
    ]
    stored = await world.store.get_run(run.id)
    assert stored is not None
    assert (stored.status, stored.started_at) == (RunStatus.RUNNING, T0)


async def test_a_step_checkpointed_again_keeps_its_first_result(world: World) -> None:
    run, job = await world.running()
    first = Checkpoint(run.id, [completed("a", {"data": 1})], STARTED, fence(job))
    again = Checkpoint(
        run.id, [completed("a", {"data": 9}), completed("b", {"data": 2})], STARTED, fence(job)
    )
    assert await world.store.checkpoint(first) is CheckpointOutcome.SAVED
    assert await world.store.checkpoint(again) is CheckpointOutcome.SAVED

    assert await world.store.list_steps(run.id) == [("a", {"data": 1}), ("b", {"data": 2})]
    history = [(h.kind, h.step_id) for h in await world.store.run_history(run.id)]
    assert history == [
        (HistoryKind.RUN_STARTED, None),
        (HistoryKind.STEP_COMPLETED, "a"),
        (HistoryKind.STEP_COMPLETED, "b"),
    ]


async def test_a_checkpoint_from_an_older_generation_writes_nothing(world: World) -> None:
    run, job = await world.running()
    await world.store.commit(world.done(job, retry_at=T0 + 10))  # the dispatch failed
    [retried] = await world.store.lease_due_jobs(T0 + 10, 10, MINUTE)

    zombie = Checkpoint(run.id, [completed("a", {"data": "old"})], STARTED, fence(job))
    assert await world.store.checkpoint(zombie) is CheckpointOutcome.STALE
    assert await world.store.list_steps(run.id) == []
    assert await world.store.run_history(run.id) == []
    stored = await world.store.get_run(run.id)
    assert stored is not None and stored.status is RunStatus.SCHEDULED

    current = Checkpoint(run.id, [completed("a", {"data": "new"})], STARTED, fence(retried))
    assert await world.store.checkpoint(current) is CheckpointOutcome.SAVED
    assert await world.store.list_steps(run.id) == [("a", {"data": "new"})]


async def test_a_checkpoint_after_its_call_was_answered_is_stale(world: World) -> None:
    run, job = await world.running()
    await world.store.commit(
        world.done(job, settled=results(("a", {"data": 1})), continue_with=call(run.id, "a"))
    )
    late = Checkpoint(run.id, [completed("b", {"data": 2})], STARTED, fence(job))
    assert await world.store.checkpoint(late) is CheckpointOutcome.STALE
    assert await world.store.list_steps(run.id) == [("a", {"data": 1})]


async def test_a_fence_on_another_runs_job_is_stale(world: World) -> None:
    run, _ = await world.running()
    _, other_job = await world.running()
    cp = Checkpoint(run.id, [completed("a", 1)], STARTED, fence(other_job))
    assert await world.store.checkpoint(cp) is CheckpointOutcome.STALE
    assert await world.store.list_steps(run.id) == []


async def test_a_checkpoint_restarts_its_jobs_attempts(world: World) -> None:
    run, job = await world.running()
    for attempt in range(2):
        await world.store.commit(world.done(job, retry_at=T0 + 10 * (attempt + 1)))
        [job] = await world.store.lease_due_jobs(T0 + 10 * (attempt + 1), 10, MINUTE)
    assert (job.attempt, job.generation) == (2, 2)

    cp = Checkpoint(run.id, [completed("a", 1)], STARTED, fence(job))
    assert await world.store.checkpoint(cp) is CheckpointOutcome.SAVED
    # The next failure of the same dispatch is its first since the step that succeeded.
    await world.store.commit(world.done(job, retry_at=T0 + 100))
    [again] = await world.store.lease_due_jobs(T0 + 100, 10, MINUTE)
    assert (again.id, again.attempt, again.generation) == (job.id, 1, 3)


async def test_a_checkpoint_without_a_fence_is_saved_unchecked(world: World) -> None:
    run, job = await world.running()
    await world.store.commit(world.done(job))
    cp = Checkpoint(run.id, [completed("a", 1)], STARTED)
    assert await world.store.checkpoint(cp) is CheckpointOutcome.SAVED
    assert await world.store.list_steps(run.id) == [("a", 1)]


async def test_a_checkpoint_for_an_ended_run_writes_nothing(world: World) -> None:
    run, job = await world.running()
    await world.store.commit(
        world.done(
            job,
            run_update=RunUpdate(status=RunStatus.CANCELLED, ended_at=T0),
            clear_run_jobs=True,
        )
    )
    cp = Checkpoint(run.id, [completed("a", 1)], STARTED)
    assert await world.store.checkpoint(cp) is CheckpointOutcome.RUN_ENDED
    assert await world.store.list_steps(run.id) == []


async def test_a_checkpoint_for_an_unknown_run_writes_nothing(world: World) -> None:
    cp = Checkpoint("no-such-run", [completed("a", 1)], STARTED)
    assert await world.store.checkpoint(cp) is CheckpointOutcome.NO_RUN


async def test_a_checkpointed_batch_step_still_holds_its_batch(world: World) -> None:
    run, calls = await plan_batch(world, ["a", "b"])
    await world.store.commit(
        world.done(calls["b"], settled=results(("b", 2)), continue_with=call(run.id, "b"))
    )
    # A result for "a" that arrives by checkpoint leaves "a" open: its own call closes it.
    assert await world.store.checkpoint(Checkpoint(run.id, results(("a", 1)), STARTED)) is (
        CheckpointOutcome.SAVED
    )
    assert await due_calls(world, run.id) == []
    await world.store.commit(
        world.done(calls["a"], settled=results(("a", 1)), continue_with=call(run.id, "a"))
    )
    assert [j.key for j in await due_calls(world, run.id)] == [f"discovery:{run.id}:a"]


async def test_a_run_started_by_a_checkpoint_is_not_started_again(world: World) -> None:
    run, job = await world.running()
    cp = Checkpoint(run.id, [completed("a", 1)], STARTED, fence(job))
    assert await world.store.checkpoint(cp) is CheckpointOutcome.SAVED
    # The call's own answer was computed from the state it was sent with: still Scheduled.
    await world.store.commit(
        world.done(
            job,
            run_update=RunUpdate(status=RunStatus.RUNNING, started_at=T0 + 5),
            history=[HistoryEntry(HistoryKind.RUN_STARTED, T0 + 5)],
        )
    )
    kinds = [h.kind for h in await world.store.run_history(run.id)]
    assert kinds == [HistoryKind.RUN_STARTED, HistoryKind.STEP_COMPLETED]
    stored = await world.store.get_run(run.id)
    assert stored is not None and stored.started_at == T0
