"""Reads for a page of runs: what each run holds open (jobs, pauses) and its events."""

from __future__ import annotations

from typing import TYPE_CHECKING

from _clock import HOUR, T0

from stepwise.server.store.records import (
    JobKind,
    NewJob,
    NewPause,
    OpenWork,
    PauseKind,
    PlannedStep,
    RunFilter,
    RunHold,
    RunStatus,
    RunUpdate,
)

if TYPE_CHECKING:
    from conftest import World


async def test_open_work_of_a_page_of_runs_in_one_read(world: World) -> None:
    sleeping, sleep_job = await world.running(at=T0 + 1)
    waiting, wait_job = await world.running(at=T0 + 2)
    ended, end_job = await world.running(at=T0 + 3)

    # The first answer of the app makes a run Running.
    started = RunUpdate(status=RunStatus.RUNNING, started_at=T0 + 1)
    await world.store.commit(
        world.done(
            sleep_job,
            run_update=started,
            planned=[
                PlannedStep(
                    "nap",
                    jobs=(NewJob(sleeping.id, JobKind.WAKE, T0 + HOUR, step_id="nap", key="wake"),),
                )
            ],
        )
    )
    wait = NewPause(
        key=f"wait:{waiting.id}",
        run_id=waiting.id,
        kind=PauseKind.WAIT,
        created_at=T0,
        step_id="paid",
        event_name="shop/paid",
        expires_at=T0 + HOUR,
    )
    await world.store.commit(
        world.done(wait_job, run_update=started, planned=[PlannedStep("paid", pause=wait)])
    )
    await world.store.commit(
        world.done(
            end_job,
            run_update=RunUpdate(status=RunStatus.COMPLETED, ended_at=T0 + 4),
            clear_run_jobs=True,
        )
    )

    leased, _ = await world.running(at=T0 + 5)
    # Created last: leasing a run's job leases every job due by then.
    queued = await world.start_run(at=T0 + 6)
    ids = [queued.id, sleeping.id, waiting.id, ended.id, leased.id, "nope"]
    work = await world.store.open_work(ids, T0 + 10)
    assert work[queued.id] == OpenWork(jobs=frozenset({JobKind.CALL}))
    assert work[leased.id] == OpenWork(jobs=frozenset({JobKind.CALL}), in_flight=True)
    # Once its lease has run out, the job is due again, no longer in flight.
    expired = await world.store.open_work([leased.id], T0 + 5 + HOUR)
    assert expired[leased.id] == OpenWork(jobs=frozenset({JobKind.CALL}))
    assert JobKind.WAKE in work[sleeping.id].jobs
    assert JobKind.CALL not in work[sleeping.id].jobs
    assert work[waiting.id].pauses == frozenset({PauseKind.WAIT})
    assert JobKind.CALL not in work[waiting.id].jobs
    assert ended.id not in work
    assert "nope" not in work
    assert not work[sleeping.id].in_flight
    assert await world.store.open_work([], T0) == {}

    # A listing narrows Running to the runs holding only a sleep, or only a wait; with
    # statuses, a run matching either is listed.
    async def listed(*holds: RunHold, statuses: tuple[RunStatus, ...] = ()) -> list[str]:
        where = RunFilter(statuses=statuses, holds=holds)
        return [r.id for r in await world.store.list_runs(where, limit=10, after=None)]

    assert await listed(RunHold.SLEEPING) == [sleeping.id]
    assert await listed(RunHold.WAITING) == [waiting.id]
    assert await listed(RunHold.WAITING, RunHold.SLEEPING) == [waiting.id, sleeping.id]
    both = await listed(RunHold.SLEEPING, statuses=(RunStatus.COMPLETED,))
    assert both == [ended.id, sleeping.id]


async def test_events_by_id_reads_first_copies_and_skips_unknown_ids(world: World) -> None:
    a = await world.start_run(at=T0, name="shop/a")
    b = await world.start_run(at=T0 + 1, name="shop/b")
    [event_a], [event_b] = a.event_ids, b.event_ids

    found = await world.store.events_by_id([event_a, event_b, event_a, "evt-unknown"])
    assert set(found) == {event_a, event_b}
    assert found[event_a] == await world.store.get_event(event_a)
    assert found[event_b].name == "shop/b"
    assert await world.store.events_by_id([]) == {}
