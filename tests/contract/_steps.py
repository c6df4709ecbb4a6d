"""Steps for hand-built transitions: results, planned calls, and a run with a parallel batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from _clock import MINUTE, T0

from stepwise.server.store.records import (
    HistoryEntry,
    HistoryKind,
    Job,
    JobKind,
    NewJob,
    NewRun,
    PlannedStep,
    RunUpdate,
    Settled,
)

if TYPE_CHECKING:
    from conftest import World


def results(*pairs: tuple[str, Any]) -> list[Settled]:
    """``Settled`` records for ``(step id, memo)`` pairs, in completion order."""
    return [Settled(step_id, memo) for step_id, memo in pairs]


def call(run_id: str, after: str) -> NewJob:
    return NewJob(run_id=run_id, kind=JobKind.CALL, run_at=T0, key=f"discovery:{run_id}:{after}")


def targeted(run_id: str, step_id: str, *, race: bool = False) -> NewJob:
    return NewJob(
        run_id=run_id,
        kind=JobKind.CALL,
        run_at=T0,
        step_id=step_id,
        key=f"step:{run_id}:{step_id}",
        payload={"race": True} if race else None,
    )


def planned_call(
    run_id: str, step_id: str, *, batch: bool = False, race: bool = False
) -> PlannedStep:
    history = (HistoryEntry(HistoryKind.STEP_PLANNED, T0, step_id, step_id),)
    return PlannedStep(
        step_id,
        jobs=(targeted(run_id, step_id, race=race),),
        history=history,
        batch=batch,
        race=race,
    )


async def due_calls(world: World, run_id: str) -> list[Job]:
    return [j for j in await world.store.lease_due_jobs(T0, 1000, MINUTE) if j.run_id == run_id]


async def plan_batch(
    world: World, steps: list[str], *, race: bool = False
) -> tuple[NewRun, dict[str, Job]]:
    """A run whose discovery planned ``steps`` as one parallel batch; their leased calls."""
    run, job = await world.running()
    await world.store.commit(
        world.done(
            job,
            planned=[planned_call(run.id, s, batch=not race, race=race) for s in steps],
            run_update=RunUpdate(request_version=2, force_step_plan=True),
        )
    )
    calls = {j.step_id: j for j in await due_calls(world, run.id)}
    assert set(calls) == set(steps)
    return run, calls
