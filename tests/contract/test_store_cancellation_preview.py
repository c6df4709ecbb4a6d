"""A bulk cancellation's preview, on every backend: paged through the store as the
cancelling job pages, it counts exactly the runs the job's rule hits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from _clock import FAR, MINUTE, T0

from stepwise.server.engine import cancellations
from stepwise.server.store.records import Ingest

if TYPE_CHECKING:
    from conftest import World


async def test_the_preview_pages_through_the_window_by_the_jobs_rule(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cancellations, "CANCEL_PAGE", 2)  # several pages from a few runs
    runs = []
    for n in range(7):
        event = world.make.event(at=T0 + n * MINUTE, data={"n": n})
        run = world.make.run(world.fn, event, at=T0 + n * MINUTE)
        await world.store.ingest(Ingest(events=[event], runs=[run]))
        runs.append(run)
    window = cancellations.ProposedCancellation(
        function_slug=world.fn.slug,
        started_before=T0 + 5 * MINUTE,
        started_after=T0 + MINUTE,
        expression="event.data.n != 3",
    )

    found = await cancellations.preview(world.store, window, sample=2)

    hit = []
    after = ""
    while True:
        page = await cancellations.page(world.store, window, after)
        hit += [s.run.id for s in page if cancellations.hits(window, s)]
        if len(page) < cancellations.CANCEL_PAGE:
            break
        after = page[-1].run.id
    assert hit == [runs[n].id for n in (1, 2, 4, 5)]
    assert found == cancellations.Preview(count=4, run_ids=hit[:2])
    everything = cancellations.ProposedCancellation(world.fn.slug, FAR, None, None)
    assert (await cancellations.preview(world.store, everything, sample=10)).count == 7
