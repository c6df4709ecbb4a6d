"""All or nothing: a lost lease writes nothing, and concurrent commits never leak into each other."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from _clock import HOUR, MINUTE, T0
from _steps import results as settled_as

from stepwise.server.store.records import (
    HistoryEntry,
    HistoryKind,
    Ingest,
    JobKind,
    LeaseLost,
    NewJob,
    RunStatus,
    RunUpdate,
    Transition,
)

if TYPE_CHECKING:
    from conftest import Backend, World


def everything(world: World, job_id: int, lease: str, run_id: str) -> Transition:
    """A transition that touches every part of the store."""
    make = world.make
    event = make.event("shop/order.shipped", at=T0 + 2)
    return Transition(
        job_id=job_id,
        lease=lease,
        run_id=run_id,
        settled=settled_as(("charge", {"data": "late"})),
        run_update=RunUpdate(
            status=RunStatus.COMPLETED,
            output="late",
            has_output=True,
            started_at=T0 + 2,
            ended_at=T0 + 2,
        ),
        new_jobs=[NewJob(run_id=run_id, kind=JobKind.CALL, run_at=T0 + 2, key=f"late:{run_id}")],
        clear_run_jobs=True,
        ingest=Ingest(events=[event], runs=[make.run(world.other_fn, event)]),
        history=[HistoryEntry(kind=HistoryKind.RUN_COMPLETED, at=T0 + 2)],
    )


async def test_a_lost_lease_raises_and_writes_nothing(world: World) -> None:
    store = world.store
    run, job = await world.running(lease_ms=MINUTE)
    await store.commit(
        world.done(
            job,
            new_jobs=[
                NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0),
                NewJob(run_id=run.id, kind=JobKind.WAKE, run_at=T0 + HOUR, step_id="nap"),
            ],
        )
    )
    [slow] = await store.lease_due_jobs(T0, 10, MINUTE)
    # The slow worker's lease expires and another worker takes the job over.
    [taken] = await store.lease_due_jobs(T0 + MINUTE, 10, MINUTE)
    assert taken.id == slow.id and taken.lease != slow.lease
    before = await store.load_run_state(run.id)
    late = everything(world, slow.id, slow.lease, run.id)

    with pytest.raises(LeaseLost):
        await store.commit(late)

    assert await store.load_run_state(run.id) == before
    assert await store.run_history(run.id) == []
    assert late.ingest is not None
    assert await store.get_event(late.ingest.events[0].internal_id) is None
    assert await store.get_run(late.ingest.runs[0].id) is None
    # Both jobs are still there, the taken one still under its new lease.
    assert await store.next_due_at() == T0 + 2 * MINUTE
    await store.commit(world.done(taken, settled=settled_as(("charge", {"data": "on time"}))))
    assert await store.list_steps(run.id) == [("charge", {"data": "on time"})]
    assert [(j.kind, j.step_id) for j in await world.drain()] == [(JobKind.WAKE, "nap")]


async def test_a_job_committed_twice_fails_the_second_time(world: World) -> None:
    store = world.store
    run, job = await world.running()
    await store.commit(world.done(job, settled=settled_as(("charge", 1))))

    with pytest.raises(LeaseLost):
        await store.commit(everything(world, job.id, job.lease, run.id))

    assert await store.list_steps(run.id) == [("charge", 1)]
    record = await store.get_run(run.id)
    assert record is not None and record.status is RunStatus.SCHEDULED
    assert await store.next_due_at() is None


async def test_a_job_with_no_lease_cannot_be_committed(world: World) -> None:
    run, job = await world.running()
    await world.store.recover_leases(T0)  # the lease is gone, the job stays

    with pytest.raises(LeaseLost):
        await world.store.commit(world.done(job, settled=settled_as(("charge", 1))))

    assert await world.store.list_steps(run.id) == []
    [again] = await world.drain()
    assert again.id == job.id


async def test_concurrent_commits_land_whole_or_not_at_all_and_share_commits(
    backend: Backend, world: World
) -> None:
    store, make = world.store, world.make
    count = 200
    events = [make.event(at=T0) for _ in range(count)]
    runs = [make.run(world.fn, e) for e in events]
    assert await store.ingest(Ingest(events=events, runs=runs)) == [r.id for r in runs]
    jobs = await store.lease_due_jobs(T0, count, HOUR)
    assert len(jobs) == count

    transitions = []
    for job in jobs:
        assert job.run_id is not None
        transitions.append(
            world.done(
                job,
                settled=settled_as(("charge", {"data": job.run_id}), ("ship", {"data": job.id})),
                run_update=RunUpdate(status=RunStatus.RUNNING, started_at=T0 + 1),
                new_jobs=[
                    NewJob(
                        run_id=job.run_id, kind=JobKind.CALL, run_at=T0 + 1, key=f"d:{job.run_id}"
                    )
                ],
                history=[HistoryEntry(kind=HistoryKind.RUN_STARTED, at=T0 + 1)],
            )
        )
    # One transition fails half-way: its follow-up run reuses an existing run's id.
    bad_index = count // 2
    bad = transitions[bad_index]
    bad_event = make.event("shop/order.shipped", at=T0 + 1)
    bad_run = replace(make.run(world.other_fn, bad_event), id=runs[0].id)
    transitions[bad_index] = replace(bad, ingest=Ingest(events=[bad_event], runs=[bad_run]))
    commits_before = backend.commits(store)

    results = await asyncio.gather(*(store.commit(t) for t in transitions), return_exceptions=True)

    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [bad_index]
    assert isinstance(results[bad_index], Exception)
    assert not isinstance(results[bad_index], LeaseLost)

    for i, (job, run) in enumerate(zip(jobs, runs, strict=True)):
        assert job.run_id == run.id
        state = await store.load_run_state(run.id)
        assert state is not None
        if i == bad_index:
            assert state.steps == []
            assert state.run.status is RunStatus.SCHEDULED
            assert state.run.started_at is None
            assert await store.run_history(run.id) == []
        else:
            assert [(s.step_id, s.memo) for s in state.steps] == [
                ("charge", {"data": run.id}),
                ("ship", {"data": job.id}),
            ]
            assert state.run.status is RunStatus.RUNNING
            assert state.run.started_at == T0 + 1
            assert len(await store.run_history(run.id)) == 1
    assert await store.get_event(bad_event.internal_id) is None
    first = await store.get_run(runs[0].id)
    assert first is not None and first.function_id == world.fn.id  # not clobbered

    if (after := backend.commits(store)) is not None:
        assert commits_before is not None
        assert after - commits_before <= count // 10, "commits were not grouped"

    # The failed job is still leased by its worker, which can still commit it.
    pending = await world.store.lease_due_jobs(T0 + 1, 10 * count, MINUTE)
    assert sorted(j.key or "" for j in pending) == sorted(
        f"d:{r.id}" for i, r in enumerate(runs) if i != bad_index
    )
    await store.commit(world.done(jobs[bad_index], settled=settled_as(("charge", "retried"))))
    assert await store.list_steps(runs[bad_index].id) == [("charge", "retried")]
    # And its follow-up run's idempotency key was not used up.
    retry_run = make.run(world.other_fn, bad_event)
    assert await store.ingest(Ingest(events=[bad_event], runs=[retry_run])) == [retry_run.id]
