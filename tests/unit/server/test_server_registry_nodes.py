"""The function registry comes from the database: an app synced through one node is known
to every node sharing it, without a sync of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stepwise.server.engine.engine import Engine
from stepwise.server.store.records import FunctionRecord
from stepwise.server.store.sqlite.store import SqliteStore


def node(store: SqliteStore) -> Engine:
    return Engine(
        store,
        signing_key=None,
        server_kind="dev",
        retry_interval_s=None,
        concurrency=4,
        call_timeout_s=30,
    )


def function_config(slug: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:9/api/inngest?fnId={slug}&stepId=step"
    return {
        "id": slug,
        "name": slug,
        "triggers": [{"event": "shop/order.placed"}],
        "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http", "url": url}}},
    }


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[Engine, Engine]]:
    path = str(tmp_path / "stepwise.db")
    # The second node writes to the same file through its own store, as a node of a
    # shared database does (a SQLite server would own its file alone).
    first, second = node(SqliteStore(path)), node(SqliteStore(path, exclusive=False))
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await second.stop()
        await first.stop()


async def sync(engine: Engine, *slugs: str) -> None:
    await engine.sync_app(
        name="shop",
        url="http://127.0.0.1:9/api/inngest",
        sdk="py:v0.5",
        framework="starlette",
        functions=[function_config(s) for s in slugs],
        checksum_source=",".join(slugs).encode(),
    )


async def known(engine: Engine, slug: str, *, present: bool = True) -> None:
    """Wait until ``engine`` knows (or no longer knows) ``slug``, by its own polling."""

    async def seen() -> None:
        while (engine.registry.get(slug) is not None) != present:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.02)

    await asyncio.wait_for(seen(), timeout=10)


async def test_an_app_synced_through_another_node_is_known_without_a_local_sync(
    nodes: tuple[Engine, Engine],
) -> None:
    first, second = nodes
    assert first.registry.get("shop-fulfil") is None

    await sync(second, "shop-fulfil")
    await known(first, "shop-fulfil")
    assert [spec.slug for spec, _ in first.registry.triggered_by("shop/order.placed")] == [
        "shop-fulfil"
    ]

    # A later sync that drops the function and adds another is seen the same way.
    await sync(second, "shop-notify")
    await known(first, "shop-notify")
    await known(first, "shop-fulfil", present=False)


async def test_without_changes_the_registry_is_not_reloaded(
    nodes: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = nodes
    await sync(second, "shop-fulfil")
    await known(first, "shop-fulfil")
    loads = 0
    list_functions = first.store.list_functions

    async def counted() -> list[FunctionRecord]:
        nonlocal loads
        loads += 1
        return await list_functions()

    monkeypatch.setattr(first.store, "list_functions", counted)
    await asyncio.sleep(1.6)  # three polls or more, with nothing synced

    assert loads == 0
    await sync(second, "shop-notify")
    await known(first, "shop-notify")
    assert loads == 1


async def test_a_reload_overtaken_by_a_sync_does_not_put_back_the_older_function_set(
    nodes: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = nodes
    store = first.store
    listed = asyncio.Event()
    release = asyncio.Event()
    real_list = store.list_functions
    calls = 0

    async def slow_first_list() -> list[FunctionRecord]:
        # The first reload reads the set before the sync commits, and is slow to apply it.
        nonlocal calls
        calls += 1
        functions = await real_list()
        if calls == 1:
            listed.set()
            await release.wait()
        return functions

    monkeypatch.setattr(store, "list_functions", slow_first_list)
    stale = asyncio.create_task(first.reload_registry())
    await listed.wait()
    syncing = asyncio.create_task(sync(first, "shop-fulfil"))
    await asyncio.sleep(0.1)
    release.set()
    await asyncio.gather(stale, syncing)

    assert first.registry.get("shop-fulfil") is not None
