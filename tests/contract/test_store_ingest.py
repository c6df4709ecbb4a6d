"""ingest: every copy of an event is stored, runs start with a due CALL job, idempotency keys hold 24 h."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from _clock import DAY, MINUTE, T0

from stepwise.server.store.records import (
    Ingest,
    JobKind,
    NewPause,
    PauseKind,
    RunRecord,
    RunStatus,
)

if TYPE_CHECKING:
    from conftest import World


async def test_ingest_stores_events_and_starts_runs_with_a_call_job_due_at_creation(
    world: World,
) -> None:
    store, make = world.store, world.make
    placed = make.event("shop/order.placed", at=T0, data={"order": 7})
    paid = make.event("shop/order.paid", at=T0 + 5)
    run = make.run(world.fn, placed, paid, at=T0 + 10)

    created = await store.ingest(Ingest(events=[placed, paid], runs=[run]))

    assert created == [run.id]
    assert await store.get_event(placed.internal_id) == placed
    assert await store.get_event(paid.internal_id) == paid
    assert await store.get_run(run.id) == RunRecord(
        id=run.id,
        function_id=world.fn.id,
        function_slug=world.fn.slug,
        event_ids=(placed.internal_id, paid.internal_id),
        status=RunStatus.SCHEDULED,
        created_at=T0 + 10,
        started_at=None,
        ended_at=None,
        output=None,
        error=None,
        request_version=-1,
        force_step_plan=False,
        cron=None,
    )
    state = await store.load_run_state(run.id)
    assert state is not None
    assert state.events == [placed, paid]
    assert state.steps == []

    assert await store.next_due_at() == T0 + 10
    assert await store.lease_due_jobs(T0 + 9, 10, MINUTE) == []
    [job] = await store.lease_due_jobs(T0 + 10, 10, MINUTE)
    assert (job.run_id, job.kind, job.step_id, job.attempt, job.run_at) == (
        run.id,
        JobKind.CALL,
        "step",
        0,
        T0 + 10,
    )
    assert job.lease


async def test_an_event_without_runs_is_stored_alone(world: World) -> None:
    event = world.make.event("nobody/listens")

    assert await world.store.ingest(Ingest(events=[event])) == []

    assert await world.store.get_event(event.internal_id) == event
    assert await world.store.next_due_at() is None


async def test_a_seen_idempotency_key_starts_no_second_run_within_24_hours(world: World) -> None:
    store, make = world.store, world.make
    first_event = make.event(id="order-7", at=T0)
    first = make.run(world.fn, first_event)
    assert await store.ingest(Ingest(events=[first_event], runs=[first])) == [first.id]

    # The same user event id sent again, just before the key expires.
    again_event = make.event(id="order-7", at=T0 + DAY - 1)
    again = make.run(world.fn, again_event)
    # Within one batch too: only one run per (function, key).
    twin = make.run(world.fn, again_event)
    # Another function may use the same key.
    other = make.run(world.other_fn, again_event)

    created = await store.ingest(Ingest(events=[again_event], runs=[again, twin, other]))

    assert created == [other.id]
    assert await store.get_run(again.id) is None
    assert await store.get_run(twin.id) is None
    assert await store.get_run(other.id) is not None
    # The event itself is still stored: only the run is de-duplicated.
    assert await store.get_event(again_event.internal_id) == again_event
    assert [j.run_id for j in await world.drain()] == [first.id, other.id]


async def test_an_expired_idempotency_key_allows_a_new_run(world: World) -> None:
    store, make = world.store, world.make
    first_event = make.event(id="order-7", at=T0)
    first = make.run(world.fn, first_event)
    await store.ingest(Ingest(events=[first_event], runs=[first]))

    later_event = make.event(id="order-7", at=T0 + DAY + 1)
    later = make.run(world.fn, later_event)
    assert await store.ingest(Ingest(events=[later_event], runs=[later])) == [later.id]

    # ...and the renewed key holds for another 24 h from the new run.
    latest_event = make.event(id="order-7", at=T0 + DAY + 2)
    latest = make.run(world.fn, latest_event)
    assert await store.ingest(Ingest(events=[latest_event], runs=[latest])) == []

    assert {r.id for r in await store.runs_for_event(later_event.internal_id)} == {later.id}


async def test_every_copy_of_an_event_is_stored_and_only_the_first_starts_runs(
    world: World,
) -> None:
    store, make = world.store, world.make
    event = make.event(data={"version": 1})
    run = make.run(world.fn, event)
    assert await store.ingest(Ingest(events=[event], runs=[run])) == [run.id]

    # A retried send repeats the internal id. The scheduler plans its runs again; here
    # for another function, so no idempotency key stands in the way: the copy rule does.
    resent = replace(event, data={"version": 2}, received_at=T0 + 1)
    again = make.run(world.other_fn, resent)
    assert await store.ingest(Ingest(events=[resent], runs=[again])) == []
    assert await store.ingest(Ingest(events=[resent])) == []

    assert await store.get_event(event.internal_id) == event  # the first copy
    page = await store.list_events(
        limit=100, cursor=None, name=None, received_after=None, received_before=None
    )
    assert page == [replace(resent, copy=2), replace(resent, copy=1), event]
    assert await store.get_run(again.id) is None
    assert [r.id for r in await store.runs_for_event(event.internal_id)] == [run.id]
    state = await store.load_run_state(run.id)
    assert state is not None and state.events == [event]
    assert [j.run_id for j in await world.drain()] == [run.id]


async def test_copies_in_one_ingest_are_numbered_in_order(world: World) -> None:
    event = world.make.event()
    second = replace(event, received_at=T0 + 1)

    await world.store.ingest(Ingest(events=[event, second]))

    page = await world.store.list_events(
        limit=100, cursor=None, name=None, received_after=None, received_before=None
    )
    assert page == [replace(second, copy=1), event]


async def test_a_copy_of_an_event_queues_no_second_pause_match(world: World) -> None:
    store, make = world.store, world.make
    trigger = make.event()
    run = make.run(world.fn, trigger)
    cancel_on = NewPause(
        key=f"cancel:{run.id}",
        run_id=run.id,
        kind=PauseKind.CANCEL,
        created_at=T0,
        event_name="shop/order.cancelled",
    )
    await store.ingest(Ingest(events=[trigger], runs=[replace(run, pauses=(cancel_on,))]))
    cancelled = make.event("shop/order.cancelled", at=T0 + 1)
    await store.ingest(Ingest(events=[cancelled]))
    [match] = [j for j in await world.drain() if j.kind is JobKind.MATCH]
    assert match.key == f"match:{cancelled.internal_id}"
    await store.commit(world.done(match))  # matched nothing here; its job is gone

    # The same event again (a retried send) must not be matched a second time.
    await store.ingest(Ingest(events=[replace(cancelled, received_at=T0 + 2)]))

    assert [j for j in await world.drain() if j.kind is JobKind.MATCH] == []
