"""Flow control when runs are created: idempotency, rate limit, singleton, debounce, batching.

Each rule is checked plainly and with two callers racing on the same key (two ingests
at the same instant): exactly one of them may win.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from _clock import DAY, FAR, MINUTE, T0
from _flow import due, flow_run, ingest_run

from stepwise.server.store.records import (
    Batch,
    Debounce,
    Ingest,
    JobKind,
    NewRun,
    RateLimit,
    RunRecord,
    RunStatus,
    RunUpdate,
)

if TYPE_CHECKING:
    from conftest import World


async def ingest_at_once(world: World, count: int, **flow: Any) -> tuple[list[NewRun], list[str]]:
    """``count`` ingests of one run each, all at once; the runs and every id created."""
    pairs = [flow_run(world, **flow) for _ in range(count)]
    created = await asyncio.gather(
        *(world.store.ingest(Ingest(events=[e], runs=[r])) for e, r in pairs)
    )
    return [r for _, r in pairs], [run_id for ids in created for run_id in ids]


async def stored(world: World, runs: list[NewRun]) -> list[RunRecord]:
    records = [await world.store.get_run(r.id) for r in runs]
    return [r for r in records if r is not None]


# ---- idempotency ---------------------------------------------------------------------------
async def test_two_ingests_racing_on_one_idempotency_key_start_one_run(world: World) -> None:
    runs, created = await ingest_at_once(world, 2, idempotency_key="order-1")

    assert len(created) == 1
    assert len(await stored(world, runs)) == 1


async def test_an_idempotency_key_is_free_again_after_24_hours(world: World) -> None:
    _, first = await ingest_run(world, idempotency_key="order-1")
    _, within = await ingest_run(world, at=T0 + DAY - 1, idempotency_key="order-1")
    _, after = await ingest_run(world, at=T0 + DAY + 1, idempotency_key="order-1")

    assert (len(first), len(within), len(after)) == (1, 0, 1)


# ---- rate limit ------------------------------------------------------------------------------
async def test_two_ingests_racing_for_the_last_rate_slot_let_one_run_start(world: World) -> None:
    runs, created = await ingest_at_once(world, 2, rate_limit=RateLimit("r", 1, MINUTE))

    assert len(created) == 2  # a skipped run is stored, with its reason
    records = await stored(world, runs)
    assert sorted(r.status for r in records) == sorted([RunStatus.SCHEDULED, RunStatus.SKIPPED])
    assert [r.skip_reason for r in records if r.status is RunStatus.SKIPPED] == ["rate_limited"]
    assert len(await due(world, FAR, JobKind.CALL)) == 1


async def test_a_rate_limit_admits_again_after_its_period(world: World) -> None:
    limit = RateLimit("r", 2, MINUTE)
    statuses = []
    for at in (T0, T0 + 1, T0 + 2, T0 + MINUTE):
        run, _ = await ingest_run(world, at=at, rate_limit=limit)
        record = await world.store.get_run(run.id)
        assert record is not None
        statuses.append(record.status)

    assert statuses == [RunStatus.SCHEDULED] * 2 + [RunStatus.SKIPPED, RunStatus.SCHEDULED]


# ---- singleton -----------------------------------------------------------------------------
async def test_two_ingests_racing_on_one_singleton_key_start_one_run(world: World) -> None:
    runs, _ = await ingest_at_once(world, 2, singleton_key="user-1")

    records = await stored(world, runs)
    assert sorted(r.status for r in records) == sorted([RunStatus.SCHEDULED, RunStatus.SKIPPED])
    assert [r.skip_reason for r in records if r.status is RunStatus.SKIPPED] == ["singleton"]


async def test_a_singleton_key_is_free_once_its_run_ended(world: World) -> None:
    first, _ = await ingest_run(world, singleton_key="user-1")
    [job] = await due(world, T0)
    assert job.run_id == first.id

    await world.store.commit(
        world.done(job, run_update=RunUpdate(status=RunStatus.COMPLETED), clear_run_jobs=True)
    )
    second, _ = await ingest_run(world, at=T0 + 1, singleton_key="user-1")

    record = await world.store.get_run(second.id)
    assert record is not None and record.status is RunStatus.SCHEDULED


async def test_a_cancelling_singleton_starts_and_cancels_the_active_run(world: World) -> None:
    first, _ = await ingest_run(world, singleton_key="user-1")
    second, _ = await ingest_run(world, at=T0 + 1, singleton_key="user-1", singleton_cancels=True)

    record = await world.store.get_run(second.id)
    assert record is not None and record.status is RunStatus.SCHEDULED
    [cancel] = await due(world, T0 + 1, JobKind.RUN_TIMEOUT)
    assert cancel.run_id == first.id
    assert cancel.payload == {"which": "singleton", "by": second.id}


# ---- debounce ------------------------------------------------------------------------------
async def test_two_ingests_racing_on_one_debounce_key_hold_one_event_and_one_job(
    world: World,
) -> None:
    runs, created = await ingest_at_once(world, 2, debounce=Debounce("d", MINUTE))

    assert created == []  # held, not started
    held = await world.store.get_debounce("d")
    assert held is not None and held[1] in {r.event_ids[0] for r in runs}
    [job] = await due(world, FAR, JobKind.DEBOUNCE)
    assert job.payload == {"key": "d"}


async def test_each_debounced_event_moves_the_window_to_a_period_after_it(world: World) -> None:
    await ingest_run(world, debounce=Debounce("d", MINUTE))
    later, _ = await ingest_run(world, at=T0 + 10_000, debounce=Debounce("d", MINUTE))

    assert await world.store.get_debounce("d") == (world.fn.id, later.event_ids[0])
    assert await due(world, T0 + MINUTE, JobKind.DEBOUNCE) == []
    assert len(await due(world, T0 + 10_000 + MINUTE, JobKind.DEBOUNCE)) == 1


async def test_a_debounce_timeout_caps_the_window_after_the_first_event(world: World) -> None:
    rule = Debounce("d", MINUTE, timeout_ms=90_000)
    for at in (T0, T0 + 50_000, T0 + 80_000):
        await ingest_run(world, at=at, debounce=rule)

    assert await due(world, T0 + 90_000 - 1, JobKind.DEBOUNCE) == []
    assert len(await due(world, T0 + 90_000, JobKind.DEBOUNCE)) == 1


async def test_an_older_debounced_event_is_ignored(world: World) -> None:
    newer, _ = await ingest_run(world, at=T0 + 5_000, debounce=Debounce("d", MINUTE))
    await ingest_run(world, at=T0, debounce=Debounce("d", MINUTE))

    assert await world.store.get_debounce("d") == (world.fn.id, newer.event_ids[0])


async def test_a_fired_debounce_frees_its_key_unless_a_newer_event_came(world: World) -> None:
    first, _ = await ingest_run(world, debounce=Debounce("d", MINUTE))
    [fired] = await due(world, T0 + MINUTE, JobKind.DEBOUNCE)
    # An event while the job fires opens the next window with a job of its own.
    newer, _ = await ingest_run(world, at=T0 + MINUTE, debounce=Debounce("d", MINUTE))

    await world.store.commit(world.done(fired, clear_debounce=("d", first.event_ids[0])))

    assert await world.store.get_debounce("d") == (world.fn.id, newer.event_ids[0])
    [next_job] = await due(world, FAR, JobKind.DEBOUNCE)
    await world.store.commit(world.done(next_job, clear_debounce=("d", newer.event_ids[0])))
    assert await world.store.get_debounce("d") is None


# ---- batching ------------------------------------------------------------------------------
async def test_two_ingests_racing_to_fill_a_batch_start_one_run_with_both(world: World) -> None:
    runs, created = await ingest_at_once(world, 2, batch=Batch("b", max_size=2, timeout_ms=MINUTE))

    [run_id] = created
    record = await world.store.get_run(run_id)
    assert record is not None
    assert sorted(record.event_ids) == sorted(r.event_ids[0] for r in runs)
    assert await due(world, FAR, JobKind.BATCH) == []  # its timeout is gone with it


async def test_events_past_a_full_batch_open_the_next_one(world: World) -> None:
    rule = Batch("b", max_size=2, timeout_ms=MINUTE)
    _, created = await ingest_at_once(world, 3, batch=rule)

    [run_id] = created
    record = await world.store.get_run(run_id)
    assert record is not None and len(record.event_ids) == 2
    [timeout] = await due(world, FAR, JobKind.BATCH)
    assert timeout.payload is not None and timeout.payload["key"] == "b"


async def test_a_batch_starts_at_its_timeout_with_what_it_has(world: World) -> None:
    rule = Batch("b", max_size=10, timeout_ms=MINUTE)
    run, created = await ingest_run(world, batch=rule)
    assert created == []
    assert await due(world, T0 + MINUTE - 1, JobKind.BATCH) == []
    [timeout] = await due(world, T0 + MINUTE, JobKind.BATCH)
    assert timeout.payload == {"key": "b", "batch_id": run.id}

    await world.store.commit(world.done(timeout, flush_batch=("b", run.id, T0 + MINUTE)))

    record = await world.store.get_run(run.id)
    assert record is not None and record.event_ids == run.event_ids


async def test_a_batch_timeout_racing_the_event_that_fills_it_starts_it_once(
    world: World,
) -> None:
    rule = Batch("b", max_size=2, timeout_ms=MINUTE)
    first, _ = await ingest_run(world, batch=rule)
    [timeout] = await due(world, T0 + MINUTE, JobKind.BATCH)
    event, filler = flow_run(world, at=T0 + MINUTE, batch=rule)

    _, created = await asyncio.gather(
        world.store.commit(world.done(timeout, flush_batch=("b", first.id, T0 + MINUTE))),
        world.store.ingest(Ingest(events=[event], runs=[filler])),
    )

    record = await world.store.get_run(first.id)
    assert record is not None and record.event_ids[0] == first.event_ids[0]
    assert first.id not in created or record.event_ids == (*first.event_ids, event.internal_id)
    if event.internal_id not in record.event_ids:
        # The timeout won: the late event is held by a batch of its own, not lost.
        [held] = await due(world, FAR, JobKind.BATCH)
        assert held.payload == {"key": "b", "batch_id": filler.id}
