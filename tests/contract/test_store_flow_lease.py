"""Flow control at lease time: step concurrency, run concurrency and throttle.

Each rule is checked once plainly and once with two callers racing for the last slot
(two leases at the same instant): exactly one of them may win it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from _clock import FAR, HOUR, MINUTE, T0
from _flow import due, ingest_run
from _steps import call, results

from stepwise.server.store.records import (
    JobKind,
    RunStatus,
    RunUpdate,
    Throttle,
)

if TYPE_CHECKING:
    from conftest import World


async def race_for_one(world: World, now: int = T0) -> list[str]:
    """Two leases of one job each, at once; the run ids they leased."""
    a, b = await asyncio.gather(
        world.store.lease_due_jobs(now, 1, HOUR), world.store.lease_due_jobs(now, 1, HOUR)
    )
    return [str(j.run_id) for j in a + b]


# ---- step concurrency ---------------------------------------------------------------------
async def test_two_leases_racing_for_the_last_step_slot_take_it_once(world: World) -> None:
    runs = [(await ingest_run(world, concurrency=(("acct:1", 1),)))[0] for _ in range(2)]

    leased = await race_for_one(world)

    assert len(leased) == 1 and leased[0] in {r.id for r in runs}


async def test_a_step_concurrency_limit_leases_up_to_the_limit(world: World) -> None:
    for _ in range(3):
        await ingest_run(world, concurrency=(("acct:1", 2),))
    await ingest_run(world, concurrency=(("acct:2", 2),))

    leased = await due(world, T0, JobKind.CALL)

    assert len(leased) == 3  # two of acct:1, one of acct:2


async def test_a_step_slot_frees_when_its_transition_commits(world: World) -> None:
    first, _ = await ingest_run(world, concurrency=(("acct:1", 1),))
    second, _ = await ingest_run(world, concurrency=(("acct:1", 1),))
    [job] = await due(world, T0)
    assert await due(world, T0 + MINUTE) == []  # the other waits while the slot is held

    await world.store.commit(world.done(job))

    assert [j.run_id for j in await due(world, FAR)] == [
        second.id if job.run_id == first.id else first.id
    ]


async def test_a_step_slot_whose_lease_expired_no_longer_counts(world: World) -> None:
    for _ in range(2):
        await ingest_run(world, concurrency=(("acct:1", 1),))
    assert len(await world.store.lease_due_jobs(T0, 10, MINUTE)) == 1

    later = await world.store.lease_due_jobs(T0 + 2 * MINUTE, 10, MINUTE)

    assert len(later) == 1  # the limit holds, but the expired slot is free again


async def test_a_step_slot_frees_when_the_job_is_released_after_a_fault(world: World) -> None:
    for _ in range(2):
        await ingest_run(world, concurrency=(("acct:1", 1),))
    [job] = await due(world, T0)

    assert await world.store.release_after_fault(job, FAR)

    [other] = await due(world, T0 + MINUTE)
    assert other.run_id != job.run_id


# ---- run concurrency ----------------------------------------------------------------------
async def test_two_leases_racing_for_the_last_run_slot_take_it_once(world: World) -> None:
    for _ in range(2):
        await ingest_run(world, run_concurrency=(("fn", 1),))

    assert len(await race_for_one(world)) == 1


async def test_a_run_holds_its_run_slot_until_it_ends(world: World) -> None:
    a, _ = await ingest_run(world, run_concurrency=(("fn", 1),))
    b, _ = await ingest_run(world, run_concurrency=(("fn", 1),))
    [job] = await due(world, T0)
    waiting = b.id if job.run_id == a.id else a.id

    # Between steps the run still holds its slot: its next call leases, the other waits.
    await world.store.commit(
        world.done(
            job,
            settled=results(("s1", 1)),
            continue_with=call(str(job.run_id), "s1"),
            run_update=RunUpdate(status=RunStatus.RUNNING, started_at=T0),
        )
    )
    [next_call] = await due(world, T0 + MINUTE)
    assert next_call.run_id == job.run_id

    await world.store.commit(
        world.done(
            next_call,
            run_update=RunUpdate(status=RunStatus.COMPLETED, ended_at=T0 + MINUTE),
            clear_run_jobs=True,
        )
    )
    assert [j.run_id for j in await due(world, FAR)] == [waiting]


# ---- throttle ----------------------------------------------------------------------------
async def test_two_leases_racing_for_a_throttle_turn_take_it_once(world: World) -> None:
    for _ in range(2):
        await ingest_run(world, throttle=Throttle("t", limit=1, period_ms=MINUTE))

    assert len(await race_for_one(world)) == 1


async def test_a_throttled_start_waits_for_its_turn_and_is_never_dropped(world: World) -> None:
    runs = [
        (await ingest_run(world, throttle=Throttle("t", limit=1, period_ms=MINUTE)))[0]
        for _ in range(2)
    ]
    [first] = await due(world, T0)

    assert await due(world, T0 + MINUTE - 1) == []
    [second] = await due(world, T0 + MINUTE)
    assert {first.run_id, second.run_id} == {r.id for r in runs}


async def test_a_throttle_burst_lets_that_many_more_start_at_once(world: World) -> None:
    for _ in range(4):
        await ingest_run(world, throttle=Throttle("t", limit=1, period_ms=MINUTE, burst=2))

    assert len(await due(world, T0)) == 3
    assert await due(world, T0 + MINUTE - 1) == []
    assert len(await due(world, T0 + MINUTE)) == 1


async def test_a_throttle_counts_only_first_calls_of_a_run(world: World) -> None:
    run, _ = await ingest_run(world, throttle=Throttle("t", limit=1, period_ms=HOUR))
    [job] = await due(world, T0)
    await world.store.commit(
        world.done(
            job,
            settled=results(("s1", 1)),
            continue_with=call(run.id, "s1"),
            run_update=RunUpdate(status=RunStatus.RUNNING, started_at=T0),
        )
    )

    [next_call] = await due(world, T0 + 1)  # well inside the hour: a later step is not a start
    assert next_call.run_id == run.id
