"""What the store can tell about an event that started no run (the events page's reasons):
the run holding an idempotency key, and the events an open batch holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from _clock import MINUTE, T0
from _flow import due, ingest_run

from stepwise.server.store.records import Batch, JobKind

if TYPE_CHECKING:
    from conftest import World


async def test_the_run_that_claimed_an_idempotency_key_is_found(world: World) -> None:
    assert await world.store.idempotency_claim(world.fn.id, "order-1") is None
    first, created = await ingest_run(world, idempotency_key="order-1")
    _, refused = await ingest_run(world, at=T0 + 1, idempotency_key="order-1")

    assert (created, refused) == ([first.id], [])
    assert await world.store.idempotency_claim(world.fn.id, "order-1") == first.id
    assert await world.store.idempotency_claim(world.fn.id, "order-2") is None
    assert await world.store.idempotency_claim("another-function", "order-1") is None


async def test_an_open_batch_holds_its_events_until_its_run_starts(world: World) -> None:
    rule = Batch("b", max_size=3, timeout_ms=MINUTE)
    assert await world.store.batch_holding("b") == []
    one, _ = await ingest_run(world, batch=rule)
    two, _ = await ingest_run(world, at=T0 + 1, batch=rule)

    assert await world.store.batch_holding("b") == [one.event_ids[0], two.event_ids[0]]
    assert await world.store.batch_holding("other") == []

    [timeout] = await due(world, T0 + MINUTE, JobKind.BATCH)
    await world.store.commit(world.done(timeout, flush_batch=("b", one.id, T0 + MINUTE)))
    assert await world.store.batch_holding("b") == []
