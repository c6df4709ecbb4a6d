"""``queue_stats``: what the metrics endpoint reads of the queue and the pauses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from _clock import HOUR, MINUTE, T0
from _flow import ingest_run

from stepwise.server.store.records import NewPause, PauseKind, PlannedStep, QueueStats

if TYPE_CHECKING:
    from conftest import World


def pause(run_id: str, step: str, kind: PauseKind) -> NewPause:
    return NewPause(
        key=f"{kind}:{run_id}:{step}",
        run_id=run_id,
        kind=kind,
        created_at=T0,
        step_id=step,
        event_name="shop/paid" if kind is PauseKind.WAIT else None,
        signal=f"sig-{run_id}" if kind is PauseKind.SIGNAL else None,
        expires_at=T0 + HOUR,
    )


async def test_an_empty_store_has_nothing_due_and_every_pause_kind_at_zero(world: World) -> None:
    assert await world.store.queue_stats(T0) == QueueStats(
        due_jobs=0, oldest_due_at=None, waiting_jobs=0, pauses=dict.fromkeys(PauseKind, 0)
    )


async def test_due_jobs_are_those_due_now_and_not_leased(world: World) -> None:
    await world.start_run(at=T0 - 5000)
    await world.start_run(at=T0 - 1000)
    await world.start_run(at=T0 + MINUTE)

    stats = await world.store.queue_stats(T0)
    assert (stats.due_jobs, stats.oldest_due_at) == (2, T0 - 5000)

    # Leased jobs are in flight, not waiting: they count again only once the lease ran out.
    await world.store.lease_due_jobs(T0, 1, MINUTE)
    stats = await world.store.queue_stats(T0)
    assert (stats.due_jobs, stats.oldest_due_at) == (1, T0 - 1000)
    # At T0 + MINUTE the lease has run out and the third run's job is due too.
    stats = await world.store.queue_stats(T0 + MINUTE)
    assert (stats.due_jobs, stats.oldest_due_at) == (3, T0 - 1000)


async def test_pauses_are_counted_by_kind(world: World) -> None:
    run, job = await world.running()
    planned = [
        PlannedStep("w1", pause=pause(run.id, "w1", PauseKind.WAIT), batch=True),
        PlannedStep("w2", pause=pause(run.id, "w2", PauseKind.WAIT), batch=True),
        PlannedStep("s", pause=pause(run.id, "s", PauseKind.SIGNAL), batch=True),
    ]
    await world.store.commit(world.done(job, planned=planned))

    stats = await world.store.queue_stats(T0)
    assert stats.pauses == {
        PauseKind.WAIT: 2,
        PauseKind.SIGNAL: 1,
        PauseKind.INVOKE: 0,
        PauseKind.CANCEL: 0,
    }
    assert stats.due_jobs == 0  # waiting runs hold pauses, not due jobs


async def test_jobs_refused_a_concurrency_slot_are_waiting_not_due(world: World) -> None:
    limit = (("step:fn|key|a", 1),)
    for n in range(3):
        await ingest_run(world, at=T0 + n, concurrency=limit)
    assert len(await world.store.lease_due_jobs(T0 + 5, 10, MINUTE)) == 1

    stats = await world.store.queue_stats(T0 + 5)

    assert (stats.due_jobs, stats.waiting_jobs) == (0, 2)
