"""Run listing: every filter, their combination, and keyset pages that stay stable while
new runs are created between two pages."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from _clock import MINUTE, T0

from stepwise.server.store.records import (
    FunctionRecord,
    Ingest,
    NewRun,
    RunFilter,
    RunRecord,
    RunStatus,
    RunUpdate,
)

if TYPE_CHECKING:
    from conftest import World
    from stepwise.server.store.base import Store


async def listed(
    store: Store, *, limit: int = 100, after: tuple[int, str] | None = None, **where: Any
) -> list[str]:
    return [r.id for r in await store.list_runs(RunFilter(**where), limit=limit, after=after)]


async def end_run(world: World, run: NewRun, status: RunStatus) -> None:
    """Lease the run's first job and end the run with ``status``."""
    job = await world.leased(run, now=run.created_at)
    await world.store.commit(
        world.done(job, run_update=RunUpdate(status=status, ended_at=run.created_at + 1))
    )


async def start(
    world: World, fn: FunctionRecord | None = None, *, at: int, name: str = "shop/order.placed"
) -> NewRun:
    return await world.start_run(fn, at=at, name=name)


async def test_lists_every_run_newest_first_ties_broken_by_id(world: World) -> None:
    a = await start(world, at=T0)
    b = await start(world, at=T0 + MINUTE)
    c = await start(world, at=T0 + MINUTE)  # same millisecond as b: the larger id first
    d = await start(world, at=T0 + 2 * MINUTE)

    assert await listed(world.store) == [d.id, c.id, b.id, a.id]
    assert await listed(world.store, limit=2) == [d.id, c.id]


async def test_list_is_empty_without_runs_and_records_read_back_whole(world: World) -> None:
    assert await listed(world.store) == []
    run = await start(world, at=T0)
    [record] = await world.store.list_runs(RunFilter(), limit=10, after=None)
    assert record == await world.store.get_run(run.id)


async def test_filters_by_one_or_several_statuses(world: World) -> None:
    scheduled = await start(world, at=T0)
    completed = await start(world, at=T0 + 1)
    failed = await start(world, at=T0 + 2)
    await end_run(world, completed, RunStatus.COMPLETED)
    await end_run(world, failed, RunStatus.FAILED)

    store = world.store
    assert await listed(store, statuses=(RunStatus.SCHEDULED,)) == [scheduled.id]
    assert await listed(store, statuses=(RunStatus.FAILED,)) == [failed.id]
    assert await listed(store, statuses=(RunStatus.COMPLETED, RunStatus.FAILED)) == [
        failed.id,
        completed.id,
    ]
    assert await listed(store, statuses=(RunStatus.CANCELLED,)) == []


async def test_filters_by_one_or_several_functions(world: World) -> None:
    a = await start(world, world.fn, at=T0)
    b = await start(world, world.other_fn, at=T0 + 1)
    c = await start(world, world.fn, at=T0 + 2)

    store = world.store
    assert await listed(store, function_slugs=(world.fn.slug,)) == [c.id, a.id]
    assert await listed(store, function_slugs=(world.other_fn.slug,)) == [b.id]
    assert await listed(store, function_slugs=(world.fn.slug, world.other_fn.slug)) == [
        c.id,
        b.id,
        a.id,
    ]
    assert await listed(store, function_slugs=("shop-no-such-fn",)) == []


async def test_filters_by_app_name(world: World) -> None:
    billing = world.make.app("billing")
    invoice = world.make.function(billing, "invoice")
    await world.store.sync_app(billing, [invoice], [])
    shop_run = await start(world, world.fn, at=T0)
    other_shop_run = await start(world, world.other_fn, at=T0 + 1)
    billing_run = await start(world, invoice, at=T0 + 2)

    store = world.store
    assert await listed(store, app_name="shop") == [other_shop_run.id, shop_run.id]
    assert await listed(store, app_name="billing") == [billing_run.id]
    assert await listed(store, app_name="nobody") == []


async def test_filters_by_creation_time_from_inclusive_until_exclusive(world: World) -> None:
    runs = [await start(world, at=T0 + i * MINUTE) for i in range(5)]

    store = world.store
    assert await listed(store, created_from=T0 + MINUTE, created_until=T0 + 3 * MINUTE) == [
        runs[2].id,
        runs[1].id,
    ]
    assert await listed(store, created_from=T0 + 3 * MINUTE) == [runs[4].id, runs[3].id]
    assert await listed(store, created_until=T0 + 1) == [runs[0].id]
    assert await listed(store, created_from=T0 + MINUTE, created_until=T0 + MINUTE) == []


async def test_filters_by_triggering_event_id_and_name(world: World) -> None:
    placed = world.make.event("shop/order.placed", at=T0)
    shipped = world.make.event("shop/order.shipped", at=T0 + 1)
    by_placed = [world.make.run(world.fn, placed), world.make.run(world.other_fn, placed)]
    # A batch run: triggered by its first event only.
    by_shipped = world.make.run(world.fn, shipped, placed, key="batch")
    await world.store.ingest(Ingest(events=[placed, shipped], runs=[*by_placed, by_shipped]))

    store = world.store
    assert await listed(store, event_id=placed.internal_id) == [r.id for r in by_placed[::-1]]
    assert await listed(store, event_id=shipped.internal_id) == [by_shipped.id]
    assert await listed(store, event_id="evt-none") == []
    assert await listed(store, event_name="shop/order.shipped") == [by_shipped.id]
    assert await listed(store, event_name="shop/order.placed") == [r.id for r in by_placed[::-1]]
    assert await listed(store, event_name="shop/order.") == []


async def test_event_name_matches_the_first_copy_not_a_later_one(world: World) -> None:
    event = world.make.event("shop/order.placed", at=T0)
    run = world.make.run(world.fn, event)
    await world.store.ingest(Ingest(events=[event], runs=[run]))
    # The same internal id stored again is kept as a copy, which starts nothing.
    copy = replace(event, name="shop/order.renamed", received_at=T0 + MINUTE)
    await world.store.ingest(Ingest(events=[copy], runs=[]))

    assert await listed(world.store, event_name="shop/order.placed") == [run.id]
    assert await listed(world.store, event_name="shop/order.renamed") == []


async def test_filters_combine_as_and(world: World) -> None:
    billing = world.make.app("billing")
    invoice = world.make.function(billing, "invoice")
    await world.store.sync_app(billing, [invoice], [])
    target = await start(world, world.fn, at=T0 + 2 * MINUTE, name="shop/order.placed")
    await end_run(world, target, RunStatus.FAILED)
    # Each of these differs from ``target`` in exactly one respect.
    completed = await start(world, world.fn, at=T0 + 2 * MINUTE + 1, name="shop/order.placed")
    await end_run(world, completed, RunStatus.COMPLETED)
    other_fn = await start(world, world.other_fn, at=T0 + 2 * MINUTE + 2)
    await end_run(world, other_fn, RunStatus.FAILED)
    other_app = await start(world, invoice, at=T0 + 2 * MINUTE + 3)
    await end_run(world, other_app, RunStatus.FAILED)
    too_early = await start(world, world.fn, at=T0)
    await end_run(world, too_early, RunStatus.FAILED)
    other_event = await start(world, world.fn, at=T0 + 2 * MINUTE + 4, name="shop/order.paid")
    await end_run(world, other_event, RunStatus.FAILED)

    where = {
        "statuses": (RunStatus.FAILED, RunStatus.CANCELLED),
        "function_slugs": (world.fn.slug, invoice.slug),
        "app_name": "shop",
        "created_from": T0 + MINUTE,
        "created_until": T0 + 3 * MINUTE,
        "event_name": "shop/order.placed",
    }
    assert await listed(world.store, **where) == [target.id]
    assert await listed(world.store, **where, event_id=target.event_ids[0]) == [target.id]
    assert await listed(world.store, **where, event_id=completed.event_ids[0]) == []
    # Dropping one condition lets exactly its run in.
    assert set(await listed(world.store, **{**where, "app_name": None})) == {
        target.id,
        other_app.id,
    }


async def test_pages_continue_where_they_stopped_while_runs_are_created(world: World) -> None:
    store = world.store
    first = [await start(world, at=T0 + i) for i in range(25)]  # created_at T0 .. T0+24
    expected = [r.id for r in reversed(first)]

    seen: list[RunRecord] = []
    page = await store.list_runs(RunFilter(), limit=10, after=None)
    seen.extend(page)
    # New runs arrive between pages, some in the same millisecond as the newest old one.
    late = [await start(world, at=T0 + 24) for _ in range(2)]
    late += [await start(world, at=T0 + 100 + i) for i in range(5)]
    while page:
        cursor = (page[-1].created_at, page[-1].id)
        page = await store.list_runs(RunFilter(), limit=10, after=cursor)
        seen.extend(page)
        await start(world, at=T0 + 200 + len(seen))

    assert [r.id for r in seen] == expected
    # A new listing from the top sees everything, newest first, each run once.
    everything = await listed(store, limit=1000)
    assert len(everything) == len(set(everything)) == 25 + len(late) + 3
    assert everything[-25:] == expected


async def test_pages_of_a_filtered_listing(world: World) -> None:
    store = world.store
    mine = [await start(world, world.fn, at=T0 + i) for i in range(7)]
    for i in range(7):
        await start(world, world.other_fn, at=T0 + i)

    where = RunFilter(function_slugs=(world.fn.slug,))
    pages: list[list[str]] = []
    after: tuple[int, str] | None = None
    while True:
        page = await store.list_runs(where, limit=3, after=after)
        if not page:
            break
        pages.append([r.id for r in page])
        after = (page[-1].created_at, page[-1].id)
    ids = [r.id for r in reversed(mine)]
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]
