"""App syncs: each URL's last attempt kept, never replaced by an older one; added stays added."""

from __future__ import annotations

from _clock import MINUTE, T0

from stepwise.server.store.base import Store
from stepwise.server.store.records import AppSyncRecord

URL = "http://127.0.0.1:3000/api/inngest"
OTHER = "http://127.0.0.1:3001/api/inngest"


async def test_the_last_attempt_of_each_url_is_kept(store: Store) -> None:
    assert await store.list_app_syncs() == []
    await store.record_app_sync(AppSyncRecord(url=URL, attempted_at=T0, ok=True, app_name="shop"))
    failed = AppSyncRecord(url=URL, attempted_at=T0 + MINUTE, ok=False, error="unreachable")
    await store.record_app_sync(failed)
    await store.record_app_sync(AppSyncRecord(url=OTHER, attempted_at=T0, ok=True))

    # The name learned from the first sync stays while later attempts name no app.
    assert await store.list_app_syncs() == [
        AppSyncRecord(
            url=URL, attempted_at=T0 + MINUTE, ok=False, error="unreachable", app_name="shop"
        ),
        AppSyncRecord(url=OTHER, attempted_at=T0, ok=True),
    ]


async def test_an_older_attempt_never_replaces_a_newer_one(store: Store) -> None:
    newer = AppSyncRecord(url=URL, attempted_at=T0 + MINUTE, ok=True, app_name="shop")
    await store.record_app_sync(newer)
    await store.record_app_sync(
        AppSyncRecord(url=URL, attempted_at=T0, ok=False, error="late news", app_name="old")
    )
    assert await store.list_app_syncs() == [newer]


async def test_a_url_stays_added_once_it_is(store: Store) -> None:
    await store.record_app_sync(
        AppSyncRecord(url=URL, attempted_at=T0, ok=False, error="refused", added_at=T0)
    )
    await store.record_app_sync(AppSyncRecord(url=URL, attempted_at=T0 + MINUTE, ok=True))
    await store.record_app_sync(
        AppSyncRecord(url=URL, attempted_at=T0 + 2 * MINUTE, ok=True, added_at=T0 + 2 * MINUTE)
    )
    (kept,) = await store.list_app_syncs()
    assert (kept.added_at, kept.attempted_at, kept.ok, kept.error) == (
        T0,
        T0 + 2 * MINUTE,
        True,
        None,
    )
