"""``search_runs``, the bounded CEL scan behind the Runs page's search and ``GET
/v1/runs?q=``, on every backend: pages of matches, a scan that stops at its bound and
resumes, the filter applied before the expression, and expressions that fail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from _clock import MINUTE, T0

from stepwise.server.api.run_search import search_runs
from stepwise.server.expr import ExpressionError
from stepwise.server.store.records import Ingest, RunFilter, RunStatus, RunUpdate

if TYPE_CHECKING:
    from conftest import World


async def order(world: World, at: int, data: dict[str, Any], output: Any = None) -> str:
    """A run of ``world.fn`` triggered by an event with ``data``; completed with ``output``
    if one is given."""
    event = world.make.event("shop/order.placed", at=at, data=data)
    run = world.make.run(world.fn, event)
    await world.store.ingest(Ingest(events=[event], runs=[run]))
    if output is not None:
        job = await world.leased(run, now=at)
        update = RunUpdate(
            status=RunStatus.COMPLETED, output=output, has_output=True, ended_at=at + 1
        )
        await world.store.commit(world.done(job, run_update=update, clear_run_jobs=True))
    return run.id


async def test_pages_of_matches_newest_first_then_resume_after_the_last(world: World) -> None:
    ids = [await order(world, T0 + i * MINUTE, {"n": i}) for i in range(10)]
    even = "event.data.n % 2 == 0"

    first = await search_runs(world.store, RunFilter(), even, limit=2, after=None, batch=3)
    assert [r.id for r in first.runs] == [ids[8], ids[6]]
    assert first.resume_after is not None and first.resume_after.id == ids[6]
    assert not first.stopped_early
    assert first.scanned == 4
    assert {e.data["n"] for e in first.events.values()} == {8, 6}

    after = (first.resume_after.created_at, first.resume_after.id)
    rest = await search_runs(world.store, RunFilter(), even, limit=10, after=after, batch=3)
    assert [r.id for r in rest.runs] == [ids[4], ids[2], ids[0]]
    assert rest.resume_after is None  # every run looked at
    assert (rest.scanned, rest.stopped_early) == (6, False)


async def test_a_scan_stops_at_its_bound_and_says_where_to_go_on(world: World) -> None:
    ids = [await order(world, T0 + i * MINUTE, {"hit": i == 0}) for i in range(7)]
    source = "event.data.hit == true"

    page = await search_runs(
        world.store, RunFilter(), source, limit=5, after=None, scan_limit=4, batch=3
    )
    assert page.runs == []
    assert (page.scanned, page.stopped_early) == (4, True)
    assert page.resume_after is not None and page.resume_after.id == ids[3]

    after = (page.resume_after.created_at, page.resume_after.id)
    more = await search_runs(
        world.store, RunFilter(), source, limit=5, after=after, scan_limit=4, batch=3
    )
    assert [r.id for r in more.runs] == [ids[0]]
    assert (more.scanned, more.stopped_early, more.resume_after) == (3, False, None)


async def test_the_filter_narrows_the_runs_before_the_expression(world: World) -> None:
    mine = await order(world, T0, {"customer": "acme"}, output={"total": 30})
    await order(world, T0 + 1, {"customer": "acme"}, output={"total": 5})
    await order(world, T0 + 2, {"customer": "globex"}, output={"total": 50})
    other = await world.start_run(world.other_fn, at=T0 + 3)
    source = 'event.data.customer == "acme" && output.total > 10'

    page = await search_runs(world.store, RunFilter(), source, limit=10, after=None)
    assert [r.id for r in page.runs] == [mine]
    assert page.scanned == 4

    only_other = RunFilter(function_slugs=(world.other_fn.slug,))
    page = await search_runs(world.store, only_other, "true", limit=10, after=None)
    assert [r.id for r in page.runs] == [other.id]
    completed = RunFilter(statuses=(RunStatus.COMPLETED,))
    page = await search_runs(world.store, completed, "output.total >= 5", limit=10, after=None)
    assert page.scanned == 3 and len(page.runs) == 3


async def test_a_run_the_expression_fails_on_does_not_match(world: World) -> None:
    text = await order(world, T0, {"total": "many"}, output="not a map")
    number = await order(world, T0 + 1, {"total": 12}, output={"total": 12})
    # ``"many" > 10`` has no overload: that run is not a match, and the scan goes on.
    page = await search_runs(
        world.store, RunFilter(), "event.data.total > 10", limit=10, after=None
    )
    assert [r.id for r in page.runs] == [number]
    # A missing field reads as null; the not-yet-ended run's output is null too.
    page = await search_runs(world.store, RunFilter(), "output.total == null", limit=10, after=None)
    assert [r.id for r in page.runs] == [text]


async def test_an_empty_store_and_an_exhausted_filter_end_the_scan(world: World) -> None:
    page = await search_runs(world.store, RunFilter(), "true", limit=10, after=None)
    assert (page.runs, page.resume_after, page.scanned, page.stopped_early) == ([], None, 0, False)


@pytest.mark.parametrize("source", ["", "   ", "event.data.n ==", "x" * 5000])
async def test_what_cannot_be_a_search_is_refused_before_reading(world: World, source: str) -> None:
    with pytest.raises(ExpressionError):
        await search_runs(world.store, RunFilter(), source, limit=10, after=None)
