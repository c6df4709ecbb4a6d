"""``function_stats``: one function's runs by status in minute and hour buckets, and the
percentiles of their durations, for its dashboard page and ``GET /v1/functions/{slug}/metrics``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from _clock import DAY, HOUR, MINUTE, T0

from stepwise.server.store.records import FunctionRecord, NewRun, RunStatus, RunUpdate
from stepwise.server.store.sql import function_stats

if TYPE_CHECKING:
    from conftest import World

# Thirty seconds into a minute: the newest minute bucket holds runs both before and after it.
NOW = (T0 // HOUR + 50) * HOUR + 17 * MINUTE + 30_000


async def run_at(
    world: World,
    at: int,
    *,
    fn: FunctionRecord | None = None,
    status: RunStatus | None = None,
    took: int = 0,
) -> NewRun:
    """A run created at ``at``; ended ``took`` ms later with ``status`` if given."""
    run = await world.start_run(fn, at=at)
    if status is not None:
        job = await world.leased(run, now=at)
        update = RunUpdate(status=status, started_at=at, ended_at=at + took)
        await world.store.commit(world.done(job, run_update=update))
    return run


async def test_runs_fall_in_their_minute_and_hour_by_status(world: World) -> None:
    minute_end = (NOW // MINUTE + 1) * MINUTE
    hour_end = (NOW // HOUR + 1) * HOUR
    await run_at(world, NOW - 25 * HOUR, status=RunStatus.COMPLETED)  # before the day
    await run_at(world, NOW - 2 * HOUR - 1, status=RunStatus.FAILED)
    await run_at(world, NOW - 5 * MINUTE, status=RunStatus.COMPLETED)
    await run_at(world, NOW - 5 * MINUTE + 1, status=RunStatus.COMPLETED)
    await run_at(world, minute_end - 60 * MINUTE, status=RunStatus.CANCELLED)  # oldest minute
    await run_at(world, minute_end - 60 * MINUTE - 1, status=RunStatus.SKIPPED)  # just before
    await run_at(world, NOW - 1)  # still scheduled
    await run_at(world, NOW, fn=world.other_fn, status=RunStatus.FAILED)  # another function

    stats = await world.store.function_stats(world.fn.slug, NOW)

    hour = stats.last_hour
    assert (hour.start, hour.end, hour.bucket_ms) == (minute_end - HOUR, minute_end, MINUTE)
    assert [b.start for b in hour.buckets] == [hour.start + i * MINUTE for i in range(60)]
    by_minute = {i: b.counts for i, b in enumerate(hour.buckets) if b.counts}
    assert by_minute == {
        0: {RunStatus.CANCELLED: 1},
        54: {RunStatus.COMPLETED: 2},
        59: {RunStatus.SCHEDULED: 1},
    }
    assert hour.ended == 2

    day = stats.last_day
    assert (day.start, day.end, day.bucket_ms) == (hour_end - DAY, hour_end, HOUR)
    assert len(day.buckets) == 24
    by_hour = {i: b.counts for i, b in enumerate(day.buckets) if b.counts}
    # NOW - 60 min lies in the hour bucket before NOW's (17 minutes past the hour).
    assert by_hour == {
        21: {RunStatus.FAILED: 1},
        22: {RunStatus.CANCELLED: 1, RunStatus.SKIPPED: 1},
        23: {RunStatus.COMPLETED: 2, RunStatus.SCHEDULED: 1},
    }
    assert day.ended == 3


async def test_percentiles_are_nearest_rank_over_ended_runs_of_the_window(world: World) -> None:
    # Twenty runs in the last hour took 100, 200, ..., 2000 ms (created in a shuffled order).
    for i in (7, 3, 19, 0, 12, 5, 16, 9, 1, 14, 18, 2, 11, 6, 15, 4, 10, 17, 8, 13):
        status = RunStatus.FAILED if i % 4 == 0 else RunStatus.COMPLETED
        await run_at(world, NOW - 30 * MINUTE + i * 1000, status=status, took=(i + 1) * 100)
    # Earlier in the day: one slow run.
    await run_at(world, NOW - 3 * HOUR, status=RunStatus.COMPLETED, took=100_000)
    # Not counted: cancelled, skipped, still running, another function, before the day.
    await run_at(world, NOW - 10 * MINUTE, status=RunStatus.CANCELLED, took=999_000)
    await run_at(world, NOW - 10 * MINUTE, status=RunStatus.SKIPPED, took=999_000)
    await run_at(world, NOW - 9 * MINUTE)
    await run_at(world, NOW - 8 * MINUTE, fn=world.other_fn, status=RunStatus.COMPLETED, took=1)
    await run_at(world, NOW - 2 * DAY, status=RunStatus.COMPLETED, took=999_000)

    stats = await world.store.function_stats(world.fn.slug, NOW)

    hour, day = stats.last_hour, stats.last_day
    assert (hour.ended, hour.sampled, hour.p50_ms, hour.p95_ms) == (20, 20, 1000, 1900)
    # 21 values: ranks ceil(10.5) = 11 and ceil(19.95) = 20.
    assert (day.ended, day.sampled, day.p50_ms, day.p95_ms) == (21, 21, 1100, 2000)


async def test_a_function_without_runs_has_empty_buckets_and_no_percentiles(
    world: World,
) -> None:
    await run_at(world, NOW - MINUTE, status=RunStatus.COMPLETED, took=5)

    stats = await world.store.function_stats(world.other_fn.slug, NOW)
    for window, buckets in ((stats.last_hour, 60), (stats.last_day, 24)):
        assert len(window.buckets) == buckets
        assert all(b.counts == {} for b in window.buckets)
        assert (window.ended, window.sampled, window.p50_ms, window.p95_ms) == (0, 0, None, None)
    assert await world.store.function_stats("shop-no-such-fn", NOW) == stats


async def test_durations_read_are_bounded_to_the_newest_runs(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(function_stats, "DURATION_SAMPLE", 3)
    for i, took in enumerate([9000, 8000, 7000, 10, 20, 30]):
        await run_at(world, NOW - 10 * MINUTE + i, status=RunStatus.COMPLETED, took=took)

    stats = await world.store.function_stats(world.fn.slug, NOW)
    for window in (stats.last_hour, stats.last_day):
        assert (window.ended, window.sampled, window.p50_ms, window.p95_ms) == (6, 3, 20, 30)


def test_percentile_is_a_value_of_the_sample() -> None:
    assert function_stats.percentile([], 50) is None
    assert function_stats.percentile([7], 50) == 7
    assert function_stats.percentile([7], 95) == 7
    assert function_stats.percentile([1, 2, 3, 4], 50) == 2
    assert function_stats.percentile([1, 2, 3, 4], 95) == 4
    assert function_stats.percentile(list(range(1, 101)), 95) == 95
