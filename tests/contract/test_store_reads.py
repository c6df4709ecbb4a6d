"""Reads: runs, the runs an event started, the event log and its pagination."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from _clock import T0

from stepwise.server.store.records import EventRecord, Ingest, JobKind, RunStatus, RunUpdate

if TYPE_CHECKING:
    from conftest import World
    from stepwise.server.store.base import Store


async def events_page(
    store: Store,
    *,
    limit: int = 100,
    cursor: tuple[str, int] | None = None,
    name: str | None = None,
    received_after: int | None = None,
    received_before: int | None = None,
) -> list[EventRecord]:
    return await store.list_events(
        limit=limit,
        cursor=cursor,
        name=name,
        received_after=received_after,
        received_before=received_before,
    )


async def test_missing_things_read_as_none_or_empty(world: World) -> None:
    store = world.store
    assert await store.get_run("no-such-run") is None
    assert await store.get_event("no-such-event") is None
    assert await store.load_run_state("no-such-run") is None
    assert await store.runs_for_event("no-such-event") == []
    assert await store.list_steps("no-such-run") == []
    assert await events_page(store) == []


async def test_get_run_reads_back_a_run_as_it_was_last_written(world: World) -> None:
    store = world.store
    cron_event = world.make.event("inngest/scheduled.timer")
    run = world.make.run(world.fn, cron_event, cron="0 * * * *")
    await store.ingest(Ingest(events=[cron_event], runs=[run]))
    [job] = await store.lease_due_jobs(T0, 1, 1000)
    assert job.kind is JobKind.CALL

    await store.commit(
        world.done(
            job,
            run_update=RunUpdate(
                status=RunStatus.COMPLETED,
                output=[1, "two", {"three": None}],
                has_output=True,
                started_at=T0 + 1,
                ended_at=T0 + 2,
            ),
        )
    )

    record = await store.get_run(run.id)
    assert record is not None
    assert (record.id, record.function_id, record.function_slug, record.event_ids) == (
        run.id,
        world.fn.id,
        world.fn.slug,
        (cron_event.internal_id,),
    )
    assert (record.status, record.created_at, record.started_at, record.ended_at) == (
        RunStatus.COMPLETED,
        T0,
        T0 + 1,
        T0 + 2,
    )
    assert (record.output, record.error, record.cron) == (
        [1, "two", {"three": None}],
        None,
        "0 * * * *",
    )


async def test_runs_for_event_lists_the_runs_the_event_triggered(world: World) -> None:
    store, make = world.store, world.make
    placed, unrelated, later = make.event(), make.event(), make.event()
    by_fn = make.run(world.fn, placed)
    by_other = make.run(world.other_fn, placed)
    # A run of several events belongs to the first one, which triggered it.
    batched = make.run(world.fn, later, placed)
    await store.ingest(Ingest(events=[placed, unrelated, later], runs=[by_fn, by_other, batched]))

    assert sorted(r.id for r in await store.runs_for_event(placed.internal_id)) == sorted(
        [by_fn.id, by_other.id]
    )
    assert [r.id for r in await store.runs_for_event(later.internal_id)] == [batched.id]
    assert await store.runs_for_event(unrelated.internal_id) == []


async def test_get_event_reads_back_every_field(world: World) -> None:
    event = EventRecord(
        internal_id="evt-x",
        id="user-id-1",
        name="shop/order.placed",
        data={"nested": {"list": [1, 2.5, None, True]}, "text": "żółw"},
        user={"id": 9},
        ts=T0 - 5,
        v="2024-01-01.1",
        received_at=T0,
    )
    await world.store.ingest(Ingest(events=[event]))

    assert await world.store.get_event("evt-x") == event
    assert await world.store.get_event("user-id-1") is None  # looked up by internal id only


async def test_list_events_pages_newest_first_with_a_cursor(world: World) -> None:
    store, make = world.store, world.make
    events = [make.event(at=T0 + i) for i in range(5)]
    await store.ingest(Ingest(events=events))
    newest_first = list(reversed(events))

    pages: list[list[EventRecord]] = []
    cursor = None
    while True:
        page = await events_page(store, limit=2, cursor=cursor)
        if not page:
            break
        pages.append(page)
        cursor = (page[-1].internal_id, page[-1].copy)

    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]


async def test_list_events_pages_through_copies_that_share_an_internal_id(world: World) -> None:
    store, make = world.store, world.make
    older, event, newer = (make.event(at=T0 + i) for i in range(3))
    await store.ingest(Ingest(events=[older, event]))
    for i in range(3):  # a send retried three times: three more copies of ``event``
        await store.ingest(Ingest(events=[replace(event, received_at=T0 + 10 + i)]))
    await store.ingest(Ingest(events=[newer]))
    copies = [replace(event, received_at=T0 + 10 + i, copy=i + 1) for i in range(3)]
    newest_first = [newer, *reversed(copies), event, older]

    pages: list[list[EventRecord]] = []
    cursor = None
    while page := await events_page(store, limit=2, cursor=cursor):
        pages.append(page)
        cursor = (page[-1].internal_id, page[-1].copy)

    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:6]]
    assert await events_page(store, cursor=(event.internal_id, 2)) == [copies[0], event, older]


async def test_list_events_filters_by_name_and_time(world: World) -> None:
    store, make = world.store, world.make
    a1 = make.event("a", at=T0 + 10)
    b1 = make.event("b", at=T0 + 20)
    a2 = make.event("a", at=T0 + 30)
    b2 = make.event("b", at=T0 + 40)
    a3 = make.event("a", at=T0 + 50)
    await store.ingest(Ingest(events=[a1, b1, a2, b2, a3]))

    assert await events_page(store, name="a") == [a3, a2, a1]
    assert await events_page(store, name="c") == []
    # Both bounds are inclusive.
    assert await events_page(store, received_after=T0 + 20, received_before=T0 + 40) == [b2, a2, b1]
    assert await events_page(store, received_after=T0 + 41) == [a3]
    assert await events_page(store, received_before=T0 + 19) == [a1]
    assert await events_page(store, name="a", received_after=T0 + 11, received_before=T0 + 50) == [
        a3,
        a2,
    ]
    # Filters and the cursor combine.
    assert await events_page(store, name="a", cursor=(a3.internal_id, 0), limit=1) == [a2]
    assert await events_page(store, name="b", cursor=(b1.internal_id, 0)) == []
