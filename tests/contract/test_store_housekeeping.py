"""Lease renewal and fencing, the registry version, and history retention."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from _clock import DAY, MINUTE, T0
from _steps import results as settled_as

from stepwise.protocol import new_ulid
from stepwise.server.store.records import (
    Checkpoint,
    CheckpointOutcome,
    DispatchFence,
    HistoryEntry,
    HistoryKind,
    Ingest,
    Job,
    LeaseLost,
    NewRun,
    RunStatus,
    RunUpdate,
)

if TYPE_CHECKING:
    from conftest import World


# ---- leases -----------------------------------------------------------------------------


async def test_a_renewed_lease_keeps_its_job_past_the_first_expiry(world: World) -> None:
    run, job = await world.running(lease_ms=MINUTE)

    assert await world.store.renew_leases([(job.id, job.lease)], T0 + 3 * MINUTE) == set()

    assert await world.store.lease_due_jobs(T0 + 2 * MINUTE, 10, MINUTE) == []
    assert await world.store.next_due_at() == T0 + 3 * MINUTE
    await world.store.commit(world.done(job, settled=settled_as(("charge", 1))))
    assert await world.store.list_steps(run.id) == [("charge", 1)]


async def test_renewal_reports_the_leases_no_longer_held(world: World) -> None:
    _, kept = await world.running(lease_ms=MINUTE)
    _, taken = await world.running(lease_ms=MINUTE)
    _, finished = await world.running(lease_ms=MINUTE)
    await world.store.commit(world.done(finished))
    # ``kept`` is renewed in time; ``taken`` runs out and another worker leases it.
    assert await world.store.renew_leases([(kept.id, kept.lease)], T0 + 3 * MINUTE) == set()
    [other] = await world.store.lease_due_jobs(T0 + MINUTE, 10, MINUTE)
    assert other.id == taken.id

    lost = await world.store.renew_leases(
        [(kept.id, kept.lease), (taken.id, taken.lease), (finished.id, finished.lease)],
        T0 + 4 * MINUTE,
    )

    assert lost == {taken.id, finished.id}
    # The new holder's lease was not touched by the old holder's renewal.
    assert await world.store.next_due_at() == T0 + 2 * MINUTE


async def test_a_lease_that_ran_out_untaken_is_still_ours(world: World) -> None:
    run, job = await world.running(lease_ms=MINUTE)

    assert await world.store.renew_leases([(job.id, job.lease)], T0 + 5 * MINUTE) == set()

    await world.store.commit(world.done(job, settled=settled_as(("charge", 1))))
    assert await world.store.list_steps(run.id) == [("charge", 1)]


async def test_renewal_keeps_the_concurrency_slots_of_the_job(world: World) -> None:
    limited: list[NewRun] = []
    for _ in range(2):
        event = world.make.event(at=T0)
        run = replace(world.make.run(world.fn, event), concurrency=(("shop", 1),))
        assert await world.store.ingest(Ingest(events=[event], runs=[run])) == [run.id]
        limited.append(run)
    [holder] = await world.store.lease_due_jobs(T0, 10, MINUTE)
    assert await world.store.renew_leases([(holder.id, holder.lease)], T0 + 3 * MINUTE) == set()

    # Past the first lease the slot is still held: the other run's step may not start.
    assert await world.store.lease_due_jobs(T0 + 2 * MINUTE, 10, MINUTE) == []
    await world.store.commit(world.done(holder))
    [other] = await world.store.lease_due_jobs(T0 + 2 * MINUTE + 500, 10, MINUTE)
    assert other.run_id == limited[1].id


async def test_renewing_nothing_is_a_no_op(world: World) -> None:
    assert await world.store.renew_leases([], T0) == set()


async def test_a_node_whose_lease_was_taken_over_can_neither_commit_nor_checkpoint(
    world: World,
) -> None:
    """The crash case: a node stalls past its lease, another takes the job and runs it."""
    store = world.store
    run, stalled = await world.running(lease_ms=MINUTE)
    [taker] = await store.lease_due_jobs(T0 + MINUTE, 10, MINUTE)
    assert taker.id == stalled.id and taker.lease != stalled.lease

    assert await store.renew_leases([(stalled.id, stalled.lease)], T0 + 2 * MINUTE) == {stalled.id}
    late = Checkpoint(
        run.id,
        settled_as(("charge", "stale")),
        HistoryEntry(HistoryKind.RUN_STARTED, T0 + MINUTE),
        DispatchFence(job_id=stalled.id, generation=stalled.generation),
    )
    assert await store.checkpoint(late) is CheckpointOutcome.STALE
    with pytest.raises(LeaseLost):
        await store.commit(world.done(stalled, settled=settled_as(("charge", "stale"))))

    assert await store.list_steps(run.id) == []
    await store.commit(world.done(taker, settled=settled_as(("charge", "fresh"))))
    assert await store.list_steps(run.id) == [("charge", "fresh")]


# ---- the registry version ---------------------------------------------------------------


async def test_every_sync_changes_the_registry_version(world: World) -> None:
    first = await world.store.registry_version()
    await world.store.sync_app(world.app, [world.fn], [])
    second = await world.store.registry_version()
    await world.store.sync_app(world.app, [world.fn], [])
    third = await world.store.registry_version()

    assert len({first, second, third}) == 3


# ---- history retention --------------------------------------------------------------------


async def finish(world: World, run: NewRun, job: Job, *, at: int) -> None:
    await world.store.commit(
        world.done(
            job,
            settled=settled_as(("charge", 1)),
            run_update=RunUpdate(status=RunStatus.COMPLETED, ended_at=at),
            clear_run_jobs=True,
            history=[HistoryEntry(HistoryKind.RUN_COMPLETED, at)],
        )
    )


async def test_purge_deletes_finished_runs_with_their_history_steps_and_events(
    world: World,
) -> None:
    store = world.store
    old, old_job = await world.running(at=T0)
    await finish(world, old, old_job, at=T0 + 1)
    recent, recent_job = await world.running(at=T0 + 2 * DAY)
    await finish(world, recent, recent_job, at=T0 + 2 * DAY)
    active = await world.start_run(at=T0)
    [old_event, recent_event, active_event] = [r.event_ids[0] for r in (old, recent, active)]

    deleted = await store.purge_finished(T0 + DAY, 500)

    assert deleted == 2  # the old run and its event
    assert await store.get_run(old.id) is None
    assert await store.list_steps(old.id) == []
    assert await store.run_history(old.id) == []
    assert await store.get_event(old_event) is None
    # A run that ended after the cutoff, and an active run, keep everything.
    for kept, event_id in ((recent, recent_event), (active, active_event)):
        assert await store.get_run(kept.id) is not None
        assert await store.get_event(event_id) is not None
    assert await store.list_steps(recent.id) == [("charge", 1)]
    record = await store.get_run(active.id)
    assert record is not None and record.status is RunStatus.SCHEDULED
    [job] = await world.drain()
    assert job.run_id == active.id
    assert await store.purge_finished(T0 + DAY, 500) == 0


async def test_purge_goes_in_batches_of_at_most_limit(world: World) -> None:
    for i in range(5):
        run, job = await world.running(at=T0 + i)
        await finish(world, run, job, at=T0 + 10 + i)

    assert await world.store.purge_finished(T0 + DAY, 2) == 4  # two runs, their two events
    assert await world.store.purge_finished(T0 + DAY, 2) == 4
    assert await world.store.purge_finished(T0 + DAY, 2) == 2
    assert await world.store.purge_finished(T0 + DAY, 2) == 0


async def test_purge_keeps_events_a_stored_run_still_needs(world: World) -> None:
    store = world.store
    event = world.make.event(at=T0)
    # One event starts two runs; one finishes long ago, the other is still active.
    done = world.make.run(world.fn, event)
    waiting = world.make.run(world.other_fn, event)
    assert await store.ingest(Ingest(events=[event], runs=[done, waiting])) == [
        done.id,
        waiting.id,
    ]
    job = await world.leased(done)
    await finish(world, done, job, at=T0 + 1)
    unused = world.make.event("shop/nobody.listens", at=T0)
    await store.ingest(Ingest(events=[unused], runs=[]))

    assert await store.purge_finished(T0 + DAY, 500) == 2  # the finished run, the unused event

    assert await store.get_run(done.id) is None
    assert await store.get_event(event.internal_id) is not None
    assert await store.get_event(unused.internal_id) is None


async def test_purge_keeps_every_event_of_an_active_batch_run(world: World) -> None:
    store = world.store
    first, second = world.make.event(at=T0), world.make.event(at=T0 + 5)
    # A batch run is named by a ULID of its first event's arrival and lists all its events.
    batch = replace(
        world.make.run(world.fn, first, second), id=new_ulid(T0), idempotency_key="batch:1"
    )
    await store.ingest(Ingest(events=[first, second], runs=[batch]))

    assert await store.purge_finished(T0 + DAY, 500) == 0
    assert await store.get_event(second.internal_id) is not None

    job = await world.leased(batch)
    await finish(world, batch, job, at=T0 + 10)
    assert await store.purge_finished(T0 + DAY, 500) == 3  # the run and both events
    assert await store.get_event(first.internal_id) is None
    assert await store.get_event(second.internal_id) is None
