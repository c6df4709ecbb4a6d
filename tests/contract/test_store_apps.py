"""sync_app: apps, their function set, and the cron schedules they declare."""

from __future__ import annotations

from typing import TYPE_CHECKING

from _clock import DAY, FAR, HOUR, MINUTE, T0

from stepwise.server.store.base import Store
from stepwise.server.store.records import JobKind

if TYPE_CHECKING:
    from conftest import Make


async def cron_jobs(store: Store) -> list[tuple[str, int, str]]:
    """Pending cron jobs as (slug, run_at, expr), sorted (leases them: call it last)."""
    jobs = await store.lease_due_jobs(FAR, 1000, MINUTE)
    out = []
    for job in jobs:
        assert job.kind is JobKind.CRON
        assert job.run_id is None
        assert job.payload is not None
        out.append((job.payload["function_slug"], job.run_at, job.payload["cron"]))
    return sorted(out)


async def test_first_sync_stores_the_app_and_its_functions(store: Store, make: Make) -> None:
    app = make.app()
    fns = [make.function(app, "fulfil", retries=3), make.function(app, "notify")]

    stored, modified = await store.sync_app(app, fns, [])

    assert modified is True
    assert stored == app
    assert await store.list_apps() == [app]
    assert await store.list_functions() == sorted(fns, key=lambda f: f.slug)


async def test_resync_with_the_same_checksum_is_not_a_modification(
    store: Store, make: Make
) -> None:
    app = make.app(checksum="same")
    fn = make.function(app, "fulfil")
    first, _ = await store.sync_app(app, [fn], [])

    # The engine builds fresh records (new uuids, new clock) on every sync.
    again = make.app(checksum="same", at=T0 + HOUR)
    stored, modified = await store.sync_app(again, [make.function(again, "fulfil")], [])

    assert modified is False
    assert stored.id == first.id
    assert stored.created_at == T0
    assert stored.updated_at == T0 + HOUR
    assert await store.list_apps() == [stored]
    # The function keeps its identity: runs and idempotency keys refer to its id.
    [kept] = await store.list_functions()
    assert kept.id == fn.id
    assert kept.app_id == first.id


async def test_resync_with_a_new_checksum_is_a_modification(store: Store, make: Make) -> None:
    first, _ = await store.sync_app(make.app(checksum="v1"), [], [])

    stored, modified = await store.sync_app(make.app(checksum="v2", at=T0 + 1), [], [])

    assert modified is True
    assert stored.id == first.id
    assert [a.checksum for a in await store.list_apps()] == ["v2"]


async def test_a_function_left_out_of_the_set_is_deleted(store: Store, make: Make) -> None:
    app = make.app()
    fulfil, notify = make.function(app, "fulfil"), make.function(app, "notify")
    await store.sync_app(app, [fulfil, notify], [])

    await store.sync_app(make.app(checksum="c2"), [make.function(app, "notify")], [])

    assert [f.id for f in await store.list_functions()] == [notify.id]


async def test_syncing_one_app_leaves_other_apps_alone(store: Store, make: Make) -> None:
    shop, mail = make.app("shop"), make.app("mail")
    shop_fn, mail_fn = make.function(shop, "fulfil"), make.function(mail, "send")
    await store.sync_app(shop, [shop_fn], [(shop_fn.slug, T0 + HOUR, "0 * * * *")])
    await store.sync_app(mail, [mail_fn], [(mail_fn.slug, T0 + DAY, "0 0 * * *")])

    await store.sync_app(make.app("shop", checksum="c2"), [], [])

    assert [(a.name, a.checksum) for a in await store.list_apps()] == [
        ("mail", mail.checksum),
        ("shop", "c2"),
    ]
    assert await store.list_functions() == [mail_fn]
    assert await cron_jobs(store) == [(mail_fn.slug, T0 + DAY, "0 0 * * *")]


async def test_declared_cron_jobs_are_created_once_and_keep_their_schedule(
    store: Store, make: Make
) -> None:
    app = make.app()
    fn = make.function(app, "nightly")
    await store.sync_app(app, [fn], [(fn.slug, T0 + HOUR, "0 * * * *")])
    assert await store.next_due_at() == T0 + HOUR

    # A re-sync (the same app restarted later) computes a later first tick: ignored.
    again = make.app(checksum="c2", at=T0 + 30 * MINUTE)
    await store.sync_app(
        again, [make.function(again, "nightly")], [(fn.slug, T0 + 2 * HOUR, "0 * * * *")]
    )
    await store.sync_app(
        again, [make.function(again, "nightly")], [(fn.slug, T0 + 3 * HOUR, "0 * * * *")]
    )

    assert await store.next_due_at() == T0 + HOUR
    assert await cron_jobs(store) == [(fn.slug, T0 + HOUR, "0 * * * *")]


async def test_cron_jobs_no_longer_declared_are_dropped(store: Store, make: Make) -> None:
    app = make.app()
    hourly, daily = make.function(app, "hourly"), make.function(app, "daily")
    await store.sync_app(
        app,
        [hourly, daily],
        [
            (hourly.slug, T0 + HOUR, "0 * * * *"),
            (hourly.slug, T0 + 30 * MINUTE, "30 * * * *"),
            (daily.slug, T0 + DAY, "0 0 * * *"),
        ],
    )

    # hourly drops one of its two schedules; daily is removed from the app altogether.
    await store.sync_app(app, [hourly], [(hourly.slug, T0 + HOUR, "0 * * * *")])
    assert await store.next_due_at() == T0 + HOUR

    await store.sync_app(app, [hourly], [])
    assert await store.next_due_at() is None
    assert await cron_jobs(store) == []


async def test_cron_jobs_of_a_function_id_with_a_colon_are_dropped_too(
    store: Store, make: Make
) -> None:
    app = make.app()
    fn = make.function(app, "billing:charge")
    await store.sync_app(app, [fn], [(fn.slug, T0 + HOUR, "0 * * * *")])

    await store.sync_app(app, [fn], [])

    assert await store.next_due_at() is None
