"""Steps of a run: planned once, settled once, and the run's next call by the fan-in rule."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from _clock import HOUR, MINUTE, T0
from _steps import call, due_calls, plan_batch, planned_call, results

from stepwise.server.store.records import (
    HistoryEntry,
    HistoryKind,
    Ingest,
    JobKind,
    LeaseLost,
    NewJob,
    NewPause,
    PauseKind,
    PlannedStep,
    RunChange,
    RunStatus,
    RunUpdate,
    SignalTaken,
)

if TYPE_CHECKING:
    from conftest import World


async def test_a_batch_goes_on_once_after_its_last_step(world: World) -> None:
    run, calls = await plan_batch(world, ["a", "b", "c"])
    for step in ["a", "b"]:
        await world.store.commit(
            world.done(
                calls[step],
                settled=results((step, {"data": step})),
                continue_with=call(run.id, step),
            )
        )
        assert await due_calls(world, run.id) == []

    await world.store.commit(
        world.done(
            calls["c"], settled=results(("c", {"data": "c"})), continue_with=call(run.id, "c")
        )
    )
    [next_call] = await due_calls(world, run.id)
    assert next_call.key == f"discovery:{run.id}:c"
    state = await world.store.load_run_state(run.id)
    assert state is not None and state.run.force_step_plan is False  # planning mode ends


async def test_two_commits_racing_to_settle_a_batch_s_last_steps_go_on_once(
    world: World,
) -> None:
    run, calls = await plan_batch(world, ["a", "b"])

    await asyncio.gather(
        *(
            world.store.commit(
                world.done(calls[s], settled=results((s, s)), continue_with=call(run.id, s))
            )
            for s in ["a", "b"]
        )
    )

    [next_call] = await due_calls(world, run.id)
    assert next_call.key in {f"discovery:{run.id}:a", f"discovery:{run.id}:b"}


async def test_a_race_goes_on_after_each_step(world: World) -> None:
    run, calls = await plan_batch(world, ["a", "b"], race=True)
    await world.store.commit(
        world.done(calls["a"], settled=results(("a", 1)), continue_with=call(run.id, "a"))
    )
    assert [j.key for j in await due_calls(world, run.id)] == [f"discovery:{run.id}:a"]


async def test_request_version_1_goes_on_after_each_step_and_keeps_planning(world: World) -> None:
    run, job = await world.running()
    await world.store.commit(
        world.done(
            job,
            planned=[planned_call(run.id, "a"), planned_call(run.id, "b")],
            run_update=RunUpdate(request_version=1, force_step_plan=True),
        )
    )
    calls = {j.step_id: j for j in await due_calls(world, run.id)}
    await world.store.commit(
        world.done(calls["a"], settled=results(("a", 1)), continue_with=call(run.id, "a"))
    )
    assert [j.key for j in await due_calls(world, run.id)] == [f"discovery:{run.id}:a"]
    state = await world.store.load_run_state(run.id)
    assert state is not None and state.run.force_step_plan is True


async def test_a_duplicate_result_neither_overwrites_nor_goes_on_again(world: World) -> None:
    run, job = await world.running()
    await world.store.commit(
        world.done(job, settled=results(("a", {"data": 1})), continue_with=call(run.id, "a"))
    )
    [first] = await due_calls(world, run.id)
    # The same step reported again (a stale reply): nothing is written, nothing is called.
    await world.store.commit(
        world.done(
            first, settled=results(("a", {"data": 2})), continue_with=call(run.id, "a-again")
        )
    )
    assert await world.store.list_steps(run.id) == [("a", {"data": 1})]
    assert await due_calls(world, run.id) == []


async def test_a_settled_step_writes_its_history_only_with_its_first_result(world: World) -> None:
    run, job = await world.running()
    entry = HistoryEntry(HistoryKind.STEP_COMPLETED, T0, "a", "a")
    step = results(("a", 1))[0]
    done = replace(step, history=(entry,))
    await world.store.commit(world.done(job, settled=[done], continue_with=call(run.id, "a")))
    [again] = await due_calls(world, run.id)
    await world.store.commit(world.done(again, settled=[done]))
    kinds = [(h.kind, h.step_id) for h in await world.store.run_history(run.id)]
    assert kinds == [(HistoryKind.STEP_COMPLETED, "a")]


async def test_a_step_with_a_result_is_never_planned_again(world: World) -> None:
    run, job = await world.running()
    await world.store.commit(
        world.done(job, settled=results(("a", 1)), continue_with=call(run.id, "a"))
    )
    [discovery] = await due_calls(world, run.id)
    # A reply computed before "a" finished plans it again: nothing of it is created.
    await world.store.commit(world.done(discovery, planned=[planned_call(run.id, "a")]))
    assert await due_calls(world, run.id) == []
    assert [h.kind for h in await world.store.run_history(run.id)] == []


async def test_an_open_step_is_not_planned_twice(world: World) -> None:
    run, job = await world.running()
    sleep = PlannedStep(
        "nap",
        jobs=(NewJob(run_id=run.id, kind=JobKind.WAKE, run_at=T0 + HOUR, step_id="nap", key="w1"),),
        history=(HistoryEntry(HistoryKind.SLEEP_STARTED, T0, "nap", "nap"),),
    )
    await world.store.commit(world.done(job, planned=[sleep], new_jobs=[call(run.id, "extra")]))
    [extra] = await due_calls(world, run.id)
    again = PlannedStep(
        "nap",
        jobs=(NewJob(run_id=run.id, kind=JobKind.WAKE, run_at=T0 + HOUR, step_id="nap", key="w2"),),
        history=(HistoryEntry(HistoryKind.SLEEP_STARTED, T0, "nap", "nap"),),
    )
    await world.store.commit(world.done(extra, planned=[again]))
    wakes = [
        j for j in await world.store.lease_due_jobs(T0 + HOUR, 100, MINUTE) if j.run_id == run.id
    ]
    assert [j.key for j in wakes] == ["w1"]
    assert [h.kind for h in await world.store.run_history(run.id)] == [HistoryKind.SLEEP_STARTED]


async def test_an_invoked_child_is_not_started_for_a_finished_invoke(world: World) -> None:
    run, job = await world.running()
    await world.store.commit(
        world.done(job, settled=results(("inv", {"data": 1})), continue_with=call(run.id, "inv"))
    )
    [discovery] = await due_calls(world, run.id)
    event = world.make.event("inngest/function.invoked", at=T0)
    child = world.make.run(world.other_fn, event)
    stale = PlannedStep("inv", ingest=Ingest(events=[event], runs=[child]))
    await world.store.commit(world.done(discovery, planned=[stale]))
    assert await world.store.get_run(child.id) is None


async def test_a_step_planned_beside_a_result_holds_the_next_call_back(world: World) -> None:
    """A reply that both settles a step and plans a new one: the new one calls later."""
    run, job = await world.running()
    sleep = PlannedStep(
        "nap",
        jobs=(NewJob(run_id=run.id, kind=JobKind.WAKE, run_at=T0 + HOUR, step_id="nap", key="w"),),
    )
    await world.store.commit(
        world.done(job, settled=results(("a", 1)), planned=[sleep], continue_with=call(run.id, "a"))
    )
    assert await due_calls(world, run.id) == []


async def test_an_abandoned_batch_step_releases_the_batch(world: World) -> None:
    run, calls = await plan_batch(world, ["a", "b"])
    await world.store.commit(
        world.done(calls["a"], settled=results(("a", 1)), continue_with=call(run.id, "a"))
    )
    # "b" is gone from the app: its targeted call settles nothing.
    await world.store.commit(
        world.done(calls["b"], abandoned=["b"], continue_with=call(run.id, "b"))
    )
    assert [j.key for j in await due_calls(world, run.id)] == [f"discovery:{run.id}:b"]


async def test_a_resumed_pause_settles_its_step_by_the_fan_in_rule(world: World) -> None:
    run, job = await world.running()
    waits = [
        PlannedStep(
            s,
            pause=NewPause(
                key=f"wait:{run.id}:{s}",
                run_id=run.id,
                kind=PauseKind.WAIT,
                created_at=T0,
                step_id=s,
                event_name="shop/paid",
            ),
            batch=True,
        )
        for s in ["w1", "w2"]
    ]
    await world.store.commit(world.done(job, planned=waits))

    def resume(step: str) -> RunChange:
        return RunChange(
            run_id=run.id,
            consume_pause=f"wait:{run.id}:{step}",
            settled=results((step, {"name": "shop/paid"})),
            continue_with=call(run.id, step),
        )

    assert await world.store.apply_changes([resume("w1")]) == [True]
    assert await due_calls(world, run.id) == []
    assert await world.store.apply_changes([resume("w1"), resume("w2")]) == [False, True]
    assert [j.key for j in await due_calls(world, run.id)] == [f"discovery:{run.id}:w2"]


def signal_wait(run_id: str, step: str, *, steal: bool, at: int = T0) -> PlannedStep:
    return PlannedStep(
        step,
        pause=NewPause(
            key=f"signal:{run_id}:{step}",
            run_id=run_id,
            kind=PauseKind.SIGNAL,
            created_at=at,
            step_id=step,
            signal="order-42",
            steal_signal=steal,
            expires_at=at + HOUR,
        ),
    )


async def test_a_signal_taken_over_leaves_the_earlier_wait_to_its_timeout(world: World) -> None:
    first, job = await world.running()
    await world.store.commit(world.done(job, planned=[signal_wait(first.id, "s", steal=True)]))
    second, job = await world.running()
    await world.store.commit(world.done(job, planned=[signal_wait(second.id, "s", steal=True)]))

    holder = await world.store.pause_for_signal("order-42")
    assert holder is not None and holder.run_id == second.id
    earlier = await world.store.run_pauses(first.id)
    assert [(p.key, p.signal, p.expires_at) for p in earlier] == [
        (f"signal:{first.id}:s", None, T0 + HOUR)
    ]


async def test_a_taken_signal_refuses_a_wait_that_may_not_take_it(world: World) -> None:
    first, job = await world.running()
    await world.store.commit(world.done(job, planned=[signal_wait(first.id, "s", steal=False)]))
    second, job = await world.running()
    with pytest.raises(SignalTaken):
        await world.store.commit(
            world.done(job, planned=[signal_wait(second.id, "s", steal=False)])
        )
    # Nothing of the refused transition was written; its job is still leased to us.
    assert await world.store.run_pauses(second.id) == []
    holder = await world.store.pause_for_signal("order-42")
    assert holder is not None and holder.run_id == first.id


async def test_a_fault_hands_the_job_back_with_its_slots_free(world: World) -> None:
    limited = []
    for _ in range(2):
        event = world.make.event(at=T0)
        run = replace(world.make.run(world.fn, event), concurrency=(("shop", 1),))
        assert await world.store.ingest(Ingest(events=[event], runs=[run])) == [run.id]
        limited.append(run)
    [job] = await world.store.lease_due_jobs(T0, 10, MINUTE)  # the slot admits one step
    assert (job.run_id, job.faults, job.generation) == (limited[0].id, 0, 0)

    assert await world.store.release_after_fault(job, T0 + 500) is True
    assert await world.store.release_after_fault(job, T0 + 500) is False  # not ours any more
    # The slot went with the fault: the other run's step (put back when it was blocked)
    # may take it before the faulted job is due again.
    [other] = await world.store.lease_due_jobs(T0 + 300, 10, MINUTE)
    assert other.run_id == limited[1].id
    await world.store.commit(world.done(other))
    [again] = await world.store.lease_due_jobs(T0 + 500, 10, MINUTE)
    assert (again.id, again.faults, again.generation, again.attempt) == (job.id, 1, 1, 0)


async def test_a_failed_attempt_and_an_expired_lease_start_new_generations(world: World) -> None:
    _, job = await world.running(lease_ms=MINUTE)
    await world.store.commit(world.done(job, retry_at=T0 + 10))
    [retried] = await world.store.lease_due_jobs(T0 + 10, 10, MINUTE)
    assert (retried.attempt, retried.generation) == (1, 1)
    # Its lease runs out: whoever leases it next is a new dispatch.
    [taken] = await world.store.lease_due_jobs(T0 + 10 + MINUTE, 10, MINUTE)
    assert (taken.id, taken.generation) == (retried.id, 2)


async def test_a_restart_starts_a_new_generation_of_in_flight_jobs(world: World) -> None:
    _, job = await world.running()
    assert await world.store.recover_leases(T0 + 1) == 1
    [again] = await world.store.lease_due_jobs(T0 + 1, 10, MINUTE)
    assert (again.id, again.generation) == (job.id, 1)


async def test_an_ended_run_drops_its_open_steps(world: World) -> None:
    run, calls = await plan_batch(world, ["a", "b"])
    await world.store.commit(
        world.done(
            calls["a"],
            run_update=RunUpdate(status=RunStatus.FAILED, ended_at=T0),
            clear_run_jobs=True,
        )
    )
    assert await due_calls(world, run.id) == []
    # A late result of the other step finds its job gone and changes nothing.
    with pytest.raises(LeaseLost):
        await world.store.commit(world.done(calls["b"], settled=results(("b", 1))))
