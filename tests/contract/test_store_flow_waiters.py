"""Jobs waiting for a flow-control key: parked with their rank, woken in rank order.

A job refused at lease time (its concurrency key is full, its throttle's turn has not
come) waits on the key that refused it. It is due again when that key frees, not on a
timer; then the best-ranked waiter goes first, and a run's priority moved its rank
earlier. A parked job is also looked at again after a while, so a lost wake-up stalls
nothing for ever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from _clock import MINUTE, T0
from _flow import due, ingest_run
from _steps import results

from stepwise.server.flow.waiters import MIN_RECHECK_MS
from stepwise.server.store.records import (
    JobKind,
    NewJob,
    RunChange,
    RunStatus,
    RunUpdate,
    Throttle,
)

if TYPE_CHECKING:
    from conftest import World
    from stepwise.server.store.records import Job, NewRun

PRIORITY_MS = 600_000  # a priority factor of 600 s moves a run's first call this much earlier
STEP_LIMIT = (("step:fn|key|a", 1),)
RUN_LIMIT = (("fn:fn|key|a", 1),)


async def blocker_and_waiters(
    world: World, waiters: int = 2, **flow: object
) -> tuple[Job, list[NewRun]]:
    """A run holding the key's only slot, then ``waiters`` runs refused by it at T0 + 10.

    The last waiter has a priority factor of 600 s; the others none, in arrival order.
    """
    await ingest_run(world, **flow)
    [held] = await due(world, T0)
    runs = []
    for n in range(1, waiters + 1):
        at = T0 + n
        start_at = at - PRIORITY_MS if n == waiters else None
        run, _ = await ingest_run(world, at=at, start_at=start_at, **flow)
        runs.append(run)
    assert await due(world, T0 + 10) == []  # every one of them waits for the slot
    return held, runs


# ---- step concurrency ---------------------------------------------------------------------
async def test_a_released_step_slot_goes_to_the_highest_priority_waiter(world: World) -> None:
    held, [low, high] = await blocker_and_waiters(world, concurrency=STEP_LIMIT)

    await world.store.commit(world.done(held))
    [first] = await due(world, T0 + 11)
    await world.store.commit(world.done(first))
    [second] = await due(world, T0 + 12)

    assert (first.run_id, second.run_id) == (high.id, low.id)


async def test_waiters_of_the_same_priority_go_in_the_order_they_came(world: World) -> None:
    held, runs = await blocker_and_waiters(world, waiters=4, concurrency=STEP_LIMIT)
    *plain, high = runs

    order = []
    job = held
    for n in range(4):
        await world.store.commit(world.done(job))
        [job] = await due(world, T0 + 11 + n)
        order.append(job.run_id)

    assert order == [high.id, *(r.id for r in plain)]


async def test_the_next_step_of_an_older_run_goes_before_a_newer_run_starts(
    world: World,
) -> None:
    older, _ = await ingest_run(world, concurrency=STEP_LIMIT)
    [first_call] = await due(world, T0)
    newer, _ = await ingest_run(world, at=T0 + 1, concurrency=STEP_LIMIT)
    assert await due(world, T0 + 2) == []

    # The older run's step settles at T0 + 5: its next call ranks as the run, from T0.
    next_call = NewJob(run_id=older.id, kind=JobKind.CALL, run_at=T0 + 5, key="next")
    await world.store.commit(
        world.done(first_call, settled=results(("s1", 1)), continue_with=next_call)
    )
    [second] = await due(world, T0 + 6)

    assert second.run_id == older.id
    await world.store.commit(world.done(second))
    assert [j.run_id for j in await due(world, T0 + 7)] == [newer.id]


async def test_a_released_slot_wakes_one_waiter_and_leaves_the_others_parked(
    world: World,
) -> None:
    held, [_, _, high] = await blocker_and_waiters(world, waiters=3, concurrency=STEP_LIMIT)

    await world.store.commit(world.done(held))
    [woken] = await due(world, T0 + 11)

    assert woken.run_id == high.id
    # The others were not woken and refused again: they are still due when first parked.
    assert await world.store.next_due_at() == T0 + 10 + MIN_RECHECK_MS


async def test_a_parked_job_is_looked_at_again_later_the_longer_it_waits(world: World) -> None:
    held, _ = await blocker_and_waiters(world, waiters=1, concurrency=STEP_LIMIT)
    checks = []
    now = T0 + 10
    for _ in range(4):
        next_check = await world.store.next_due_at()
        assert next_check is not None and next_check > now
        assert await due(world, next_check - 1) == []
        now = next_check
        assert await due(world, now) == []  # looked at again, still refused
        checks.append(now)

    gaps = [b - a for a, b in zip([T0 + 10, *checks], checks, strict=False)]
    assert gaps == [MIN_RECHECK_MS, MIN_RECHECK_MS, 2 * MIN_RECHECK_MS, 4 * MIN_RECHECK_MS]
    assert held.lease  # the slot was held all along


async def test_a_cancelled_run_gives_the_slot_of_its_step_in_flight_to_the_best_waiter(
    world: World,
) -> None:
    held, [_, high] = await blocker_and_waiters(world, concurrency=STEP_LIMIT)

    await world.store.apply_changes(
        [
            RunChange(
                run_id=str(held.run_id),
                run_update=RunUpdate(status=RunStatus.CANCELLED, ended_at=T0 + 11),
                end_run=True,
            )
        ]
    )

    assert [j.run_id for j in await due(world, T0 + 12)] == [high.id]


async def test_a_wake_up_lost_with_a_cancelled_run_is_caught_by_the_next_look(
    world: World,
) -> None:
    held, [low, high] = await blocker_and_waiters(world, concurrency=STEP_LIMIT)
    await world.store.commit(world.done(held))  # wakes the high-priority waiter
    await world.store.apply_changes(
        [
            RunChange(
                run_id=high.id,
                run_update=RunUpdate(status=RunStatus.CANCELLED, ended_at=T0 + 11),
                end_run=True,
            )
        ]
    )
    assert await due(world, T0 + 12) == []  # the wake-up went with the cancelled run

    [late] = await due(world, T0 + 10 + MIN_RECHECK_MS)

    assert late.run_id == low.id


async def test_a_waiter_refused_by_its_other_key_passes_the_slot_on(world: World) -> None:
    a, b = ("step:fn|key|a", 1), ("step:fn|key|b", 1)
    holds_a, _ = await ingest_run(world, concurrency=(a,))
    await ingest_run(world, concurrency=(b,))
    holders = {j.run_id: j for j in await due(world, T0)}
    both, _ = await ingest_run(world, at=T0 + 1, start_at=T0 - PRIORITY_MS, concurrency=(a, b))
    only_a, _ = await ingest_run(world, at=T0 + 2, concurrency=(a,))
    assert await due(world, T0 + 10) == []

    # Key a frees. Its best waiter needs key b too, still held: a goes to the next in line.
    await world.store.commit(world.done(holders[holds_a.id]))
    assert await due(world, T0 + 11) == []

    assert [j.run_id for j in await due(world, T0 + 11)] == [only_a.id]
    assert both.id not in {j.run_id for j in await due(world, T0 + 12)}


# ---- run concurrency ----------------------------------------------------------------------
async def test_a_run_end_gives_its_run_slot_to_the_highest_priority_waiter(world: World) -> None:
    held, [low, high] = await blocker_and_waiters(world, run_concurrency=RUN_LIMIT)

    await world.store.commit(
        world.done(
            held,
            run_update=RunUpdate(status=RunStatus.COMPLETED, ended_at=T0 + 10),
            clear_run_jobs=True,
        )
    )
    [first] = await due(world, T0 + 11)

    assert first.run_id == high.id
    await world.store.commit(
        world.done(
            first,
            run_update=RunUpdate(status=RunStatus.COMPLETED, ended_at=T0 + 11),
            clear_run_jobs=True,
        )
    )
    assert [j.run_id for j in await due(world, T0 + 12)] == [low.id]


# ---- throttle -----------------------------------------------------------------------------
async def test_the_highest_priority_throttled_run_takes_the_next_turn(world: World) -> None:
    throttle = Throttle("t", limit=1, period_ms=MINUTE)
    _, [low, high] = await blocker_and_waiters(world, throttle=throttle)

    # The low-priority run is looked at again before the turn, and waits on.
    assert await due(world, T0 + 10 + MIN_RECHECK_MS) == []
    assert await due(world, T0 + MINUTE - 1) == []
    [first] = await due(world, T0 + MINUTE)
    assert await due(world, T0 + 2 * MINUTE - 1) == []
    [second] = await due(world, T0 + 2 * MINUTE)

    assert (first.run_id, second.run_id) == (high.id, low.id)


async def test_a_run_waiting_for_its_throttle_turn_holds_no_run_slot(world: World) -> None:
    limit = (("fn:fn|key|a", 2),)
    throttle = Throttle("t", limit=1, period_ms=MINUTE)
    await ingest_run(world, run_concurrency=limit, throttle=throttle)
    await ingest_run(world, at=T0 + 1, run_concurrency=limit, throttle=throttle)
    assert len(await due(world, T0 + 1)) == 1  # the second waits for its turn

    other, _ = await ingest_run(world, at=T0 + 2, run_concurrency=limit)

    assert [j.run_id for j in await due(world, T0 + 2)] == [other.id]
