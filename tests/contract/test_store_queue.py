"""The durable queue: leasing due jobs, lease expiry, recovery, and the next due time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from _clock import HOUR, MINUTE, T0

from stepwise.server.store.records import NewRun

if TYPE_CHECKING:
    from conftest import World


async def start_runs(world: World, *offsets: int) -> list[NewRun]:
    return [await world.start_run(at=T0 + offset) for offset in offsets]


async def test_only_due_jobs_are_leased_earliest_first(world: World) -> None:
    late, early, middle = await start_runs(world, 2000, 0, 1000)

    leased = await world.store.lease_due_jobs(T0 + 1000, 10, MINUTE)

    assert [j.run_id for j in leased] == [early.id, middle.id]
    assert [j.run_id for j in await world.store.lease_due_jobs(T0 + 2000, 10, MINUTE)] == [late.id]


async def test_at_most_limit_jobs_are_leased_and_none_twice(world: World) -> None:
    runs = await start_runs(world, 0, 1, 2, 3, 4)
    now = T0 + 10

    batches = [await world.store.lease_due_jobs(now, 2, MINUTE) for _ in range(4)]

    assert [len(b) for b in batches] == [2, 2, 1, 0]
    ids = [j.id for b in batches for j in b]
    assert len(set(ids)) == 5
    assert {j.run_id for b in batches for j in b} == {r.id for r in runs}


async def test_a_leased_job_is_not_due_again_while_its_lease_lives(world: World) -> None:
    run = await world.start_run()
    job = await world.leased(run, now=T0, lease_ms=MINUTE)

    assert await world.store.lease_due_jobs(T0 + MINUTE - 1, 10, MINUTE) == []
    # A leased job falls due at its lease expiry.
    assert await world.store.next_due_at() == T0 + MINUTE

    [again] = await world.store.lease_due_jobs(T0 + MINUTE, 10, MINUTE)
    assert again.id == job.id
    assert again.lease != job.lease
    assert (again.kind, again.step_id, again.attempt) == (job.kind, job.step_id, job.attempt)


async def test_recover_leases_makes_every_leased_job_due_now(world: World) -> None:
    store = world.store
    a, b = await start_runs(world, 0, 0)
    not_yet = await world.start_run(at=T0 + HOUR)
    await store.lease_due_jobs(T0, 10, HOUR)  # leases a and b for an hour

    recovered = await store.recover_leases(T0 + 5)

    assert recovered == 2
    assert await store.next_due_at() == T0 + 5
    again = await store.lease_due_jobs(T0 + 5, 10, 2 * HOUR)
    assert {j.run_id for j in again} == {a.id, b.id}
    # A job that was never leased keeps its own time.
    assert await store.lease_due_jobs(T0 + HOUR - 1, 10, MINUTE) == []
    assert [j.run_id for j in await store.lease_due_jobs(T0 + HOUR, 10, MINUTE)] == [not_yet.id]


async def test_recover_leases_with_nothing_leased_changes_nothing(world: World) -> None:
    run = await world.start_run(at=T0 + HOUR)

    assert await world.store.recover_leases(T0) == 0

    assert await world.store.next_due_at() == T0 + HOUR
    assert [j.run_id for j in await world.drain()] == [run.id]


async def test_next_due_at_is_the_earliest_job_or_none(world: World) -> None:
    assert await world.store.next_due_at() is None

    await start_runs(world, 3000, 1000, 2000)

    assert await world.store.next_due_at() == T0 + 1000
