"""Helpers for the flow-control contract: runs with limits, and the jobs due at a time."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from _clock import HOUR, T0

from stepwise.server.store.records import EventRecord, Ingest, Job, JobKind, NewRun

if TYPE_CHECKING:
    from conftest import World


def flow_run(world: World, *, at: int = T0, **flow: Any) -> tuple[EventRecord, NewRun]:
    """An event at ``at`` and the run of ``world.fn`` it starts, with flow control ``flow``."""
    event = world.make.event(at=at)
    return event, replace(world.make.run(world.fn, event), **flow)


async def ingest_run(world: World, *, at: int = T0, **flow: Any) -> tuple[NewRun, list[str]]:
    """Ingest one event starting a run with ``flow``; the run and the ids ingest created."""
    event, run = flow_run(world, at=at, **flow)
    return run, await world.store.ingest(Ingest(events=[event], runs=[run]))


async def due(world: World, now: int, kind: JobKind | None = None, limit: int = 1000) -> list[Job]:
    """Lease what is due at ``now`` (for an hour), keeping the jobs of ``kind``."""
    jobs = await world.store.lease_due_jobs(now, limit, HOUR)
    return [j for j in jobs if kind is None or j.kind is kind]
