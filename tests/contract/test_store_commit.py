"""commit(Transition): one job's outcome, applied as a whole."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from _clock import FAR, HOUR, MINUTE, T0
from _steps import results as settled_as

from stepwise.server.store.records import (
    HistoryEntry,
    HistoryKind,
    Ingest,
    JobKind,
    LeaseLost,
    NewJob,
    PlannedStep,
    RunChange,
    RunStatus,
    RunUpdate,
)

if TYPE_CHECKING:
    from conftest import World


async def test_memos_are_kept_in_completion_order(world: World) -> None:
    store = world.store
    run, job = await world.running()
    await store.commit(
        world.done(
            job,
            settled=settled_as(("ship", {"data": 2}), ("charge", {"data": 1})),
            new_jobs=[NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 1)],
        )
    )
    [job] = await store.lease_due_jobs(T0 + 1, 10, MINUTE)
    await store.commit(world.done(job, settled=settled_as(("email", None))))

    state = await store.load_run_state(run.id)
    assert state is not None
    assert [(s.step_id, s.memo) for s in state.steps] == [
        ("ship", {"data": 2}),
        ("charge", {"data": 1}),
        ("email", None),
    ]
    seqs = [s.seq for s in state.steps]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert await store.list_steps(run.id) == [
        ("ship", {"data": 2}),
        ("charge", {"data": 1}),
        ("email", None),
    ]


async def test_a_memo_once_written_is_never_overwritten(world: World) -> None:
    store = world.store
    run, job = await world.running()
    await store.commit(
        world.done(
            job,
            settled=settled_as(("charge", {"data": "first"}), ("ship", {"data": 1})),
            new_jobs=[NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0)],
        )
    )
    job = await world.leased(run)

    # A duplicate execution reports the step again, with a different result.
    await store.commit(
        world.done(job, settled=settled_as(("charge", {"data": "second"}), ("email", 3)))
    )

    assert await store.list_steps(run.id) == [
        ("charge", {"data": "first"}),
        ("ship", {"data": 1}),
        ("email", 3),
    ]


async def test_a_plain_transition_deletes_its_job(world: World) -> None:
    run, job = await world.running()

    await world.store.commit(world.done(job))

    assert await world.store.next_due_at() is None
    assert await world.drain() == []
    # The run itself is untouched.
    record = await world.store.get_run(run.id)
    assert record is not None and record.status is RunStatus.SCHEDULED


async def test_new_jobs_are_inserted_as_given(world: World) -> None:
    store = world.store
    run, job = await world.running()
    wake = NewJob(
        run_id=run.id, kind=JobKind.WAKE, run_at=T0 + HOUR, step_id="nap", key=f"wake:{run.id}:nap"
    )
    step = NewJob(
        run_id=run.id,
        kind=JobKind.CALL,
        run_at=T0 + 1,
        step_id="charge",
        attempt=2,
        payload={"hint": [1, 2]},
    )

    await store.commit(world.done(job, new_jobs=[wake, step]))

    assert await store.next_due_at() == T0 + 1
    jobs = await world.drain()
    assert [(j.run_id, j.kind, j.run_at, j.step_id, j.attempt, j.key, j.payload) for j in jobs] == [
        (run.id, JobKind.CALL, T0 + 1, "charge", 2, None, {"hint": [1, 2]}),
        (run.id, JobKind.WAKE, T0 + HOUR, "nap", 0, f"wake:{run.id}:nap", None),
    ]
    assert job.id not in {j.id for j in jobs}


async def test_a_job_key_is_not_added_twice_while_its_job_exists(world: World) -> None:
    store = world.store
    run, job = await world.running()
    key = f"discovery:{run.id}"
    await store.commit(
        world.done(
            job,
            new_jobs=[
                NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 1, step_id="a"),
                NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 2, key=key),
                # The same key twice in one transition: the first one wins.
                NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 3, key=key),
            ],
        )
    )
    [step_a] = await store.lease_due_jobs(T0 + 1, 10, HOUR)

    # Another job of the run asks for the same discovery call: it already exists.
    await store.commit(
        world.done(
            step_a, new_jobs=[NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 4, key=key)]
        )
    )

    [discovery] = await store.lease_due_jobs(FAR, 10, HOUR)
    assert (discovery.key, discovery.run_at) == (key, T0 + 2)

    # Once that job is done, the key is free again.
    await store.commit(
        world.done(
            discovery, new_jobs=[NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 5, key=key)]
        )
    )
    [again] = await world.drain()
    assert again.id != discovery.id
    assert (again.key, again.run_at) == (key, T0 + 5)


async def test_retry_at_keeps_the_job_with_one_more_attempt_and_no_lease(world: World) -> None:
    store = world.store
    _, job = await world.running(lease_ms=HOUR)

    await store.commit(world.done(job, retry_at=T0 + 10))

    # Due at the retry time, long before the old lease would have expired.
    assert await store.next_due_at() == T0 + 10
    [retry] = await store.lease_due_jobs(T0 + 10, 10, MINUTE)
    assert (retry.id, retry.attempt, retry.step_id, retry.kind) == (
        job.id,
        job.attempt + 1,
        job.step_id,
        job.kind,
    )
    await store.commit(world.done(retry, retry_at=T0 + 20))
    [retry2] = await store.lease_due_jobs(T0 + 20, 10, MINUTE)
    assert retry2.attempt == job.attempt + 2
    # The old lease token no longer holds.
    with pytest.raises(LeaseLost):
        await store.commit(world.done(job))


async def test_reschedule_at_keeps_the_job_with_the_same_attempt(world: World) -> None:
    store = world.store
    _, job = await world.running(lease_ms=HOUR)

    await store.commit(world.done(job, reschedule_at=T0 + 10))

    [again] = await store.lease_due_jobs(T0 + 10, 10, MINUTE)
    assert (again.id, again.attempt, again.run_at) == (job.id, job.attempt, T0 + 10)


async def test_a_wake_settles_its_sleep_and_the_run_goes_on(world: World) -> None:
    store = world.store
    run, job = await world.running()
    wake = NewJob(
        run_id=run.id, kind=JobKind.WAKE, run_at=T0 + HOUR, step_id="nap", key=f"wake:{run.id}:nap"
    )
    await store.commit(world.done(job, planned=[PlannedStep("nap", jobs=(wake,))]))
    [alarm] = await store.lease_due_jobs(T0 + HOUR, 10, MINUTE)
    assert alarm.kind is JobKind.WAKE

    next_call = NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + HOUR, key=f"d:{run.id}:nap")
    await store.commit(
        world.done(alarm, settled=settled_as(("nap", None)), continue_with=next_call)
    )

    assert await store.list_steps(run.id) == [("nap", None)]
    [call] = await store.lease_due_jobs(T0 + HOUR, 10, MINUTE)
    assert (call.kind, call.step_id, call.attempt, call.key) == (
        JobKind.CALL,
        "step",
        0,
        f"d:{run.id}:nap",
    )


async def test_run_update_sets_fields_and_started_at_only_once(world: World) -> None:
    store = world.store
    run, job = await world.running()
    await store.commit(
        world.done(
            job,
            run_update=RunUpdate(
                status=RunStatus.RUNNING, started_at=T0 + 1, request_version=1, force_step_plan=True
            ),
            new_jobs=[NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 2)],
        )
    )
    running = await store.get_run(run.id)
    assert running is not None
    assert (running.status, running.started_at, running.ended_at) == (
        RunStatus.RUNNING,
        T0 + 1,
        None,
    )
    assert (running.request_version, running.force_step_plan) == (1, True)

    [job] = await store.lease_due_jobs(T0 + 2, 10, MINUTE)
    error = {"name": "Error", "message": "boom"}
    await store.commit(
        world.done(
            job,
            run_update=RunUpdate(
                status=RunStatus.FAILED,
                output={"error": "boom"},
                has_output=True,
                error=error,
                started_at=T0 + 2,
                ended_at=T0 + 3,
                force_step_plan=False,
            ),
        )
    )

    ended = await store.get_run(run.id)
    assert ended is not None
    assert (ended.status, ended.started_at, ended.ended_at) == (RunStatus.FAILED, T0 + 1, T0 + 3)
    assert (ended.output, ended.error) == ({"error": "boom"}, error)
    assert (ended.request_version, ended.force_step_plan) == (1, False)


async def test_an_output_of_none_is_written_only_when_asked(world: World) -> None:
    store = world.store
    run, job = await world.running()
    await store.commit(
        world.done(
            job,
            run_update=RunUpdate(output={"keep": True}, has_output=True),
            new_jobs=[NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 1)],
        )
    )
    [job] = await store.lease_due_jobs(T0 + 1, 10, MINUTE)
    # output=None without has_output leaves the output alone...
    await store.commit(
        world.done(
            job,
            run_update=RunUpdate(status=RunStatus.RUNNING),
            new_jobs=[NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 2)],
        )
    )
    record = await store.get_run(run.id)
    assert record is not None and record.output == {"keep": True}

    # ...and with has_output, None is a real output (a function that returned nothing).
    [job] = await store.lease_due_jobs(T0 + 2, 10, MINUTE)
    await store.commit(
        world.done(job, run_update=RunUpdate(status=RunStatus.COMPLETED, has_output=True))
    )
    record = await store.get_run(run.id)
    assert record is not None
    assert (record.status, record.output) == (RunStatus.COMPLETED, None)


async def test_clear_run_jobs_drops_the_runs_other_jobs_only(world: World) -> None:
    store = world.store
    run, job = await world.running()
    other_run = await world.start_run(at=T0 + HOUR)
    await store.commit(
        world.done(
            job,
            new_jobs=[
                NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 1, step_id="a"),
                NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 2, step_id="b"),
                NewJob(run_id=run.id, kind=JobKind.WAKE, run_at=T0 + HOUR, step_id="nap"),
            ],
        )
    )
    [step_a] = await store.lease_due_jobs(T0 + 1, 1, MINUTE)

    await store.commit(
        world.done(
            step_a,
            run_update=RunUpdate(status=RunStatus.COMPLETED, ended_at=T0 + 1),
            clear_run_jobs=True,
        )
    )

    assert [j.run_id for j in await world.drain()] == [other_run.id]


async def test_an_ingest_inside_a_transition_lands_with_it(world: World) -> None:
    store, make = world.store, world.make
    run, job = await world.running()
    finished = make.event("inngest/function.finished", at=T0 + 1)
    follow_up = make.run(world.other_fn, finished)

    await store.commit(
        world.done(
            job,
            settled=settled_as(("charge", 1)),
            run_update=RunUpdate(status=RunStatus.COMPLETED, has_output=True, ended_at=T0 + 1),
            clear_run_jobs=True,
            ingest=Ingest(events=[finished], runs=[follow_up]),
        )
    )

    assert await store.get_event(finished.internal_id) == finished
    [started] = await store.runs_for_event(finished.internal_id)
    assert (started.id, started.status) == (follow_up.id, RunStatus.SCHEDULED)
    [next_job] = await world.drain()
    assert (next_job.run_id, next_job.kind, next_job.run_at) == (follow_up.id, JobKind.CALL, T0 + 1)
    assert await store.list_steps(run.id) == [("charge", 1)]


async def test_an_ingest_inside_a_transition_honours_idempotency_keys(world: World) -> None:
    store, make = world.store, world.make
    first = await world.start_run(world.other_fn)
    [first_event_id] = first.event_ids
    _, job = await world.running(at=T0 + 1)
    resent = make.event(at=T0 + 2, id=first.idempotency_key)
    duplicate = make.run(world.other_fn, resent)

    await store.commit(world.done(job, ingest=Ingest(events=[resent], runs=[duplicate])))

    assert await store.get_event(resent.internal_id) == resent
    assert await store.get_run(duplicate.id) is None
    assert [r.id for r in await store.runs_for_event(first_event_id)] == [first.id]


async def test_commit_many_answers_each_transition_on_its_own(world: World) -> None:
    store = world.store
    run_a, job_a = await world.running()
    run_b, job_b = await world.running()
    stale = world.done(job_b, settled=settled_as(("x", 1)))
    await store.commit(world.done(job_b))  # job_b is gone: a second commit has no lease

    results = await store.commit_many(
        [
            world.done(job_a, settled=settled_as(("a", 1))),
            stale,
            world.done(job_a, settled=settled_as(("a2", 2))),
        ]
    )

    assert results[0] is None
    assert isinstance(results[1], LeaseLost)
    assert isinstance(results[2], LeaseLost)  # job_a was deleted by the first one
    assert await store.list_steps(run_a.id) == [("a", 1)]
    assert await store.list_steps(run_b.id) == []


async def test_history_is_written_with_the_transition_in_order(world: World) -> None:
    store = world.store
    run, job = await world.running()
    history = [
        HistoryEntry(kind=HistoryKind.RUN_STARTED, at=T0 + 1),
        HistoryEntry(
            kind=HistoryKind.STEP_COMPLETED, at=T0 + 2, step_id="charge", name="Charge", data=1
        ),
    ]
    await store.commit(
        world.done(
            job,
            history=history,
            new_jobs=[NewJob(run_id=run.id, kind=JobKind.CALL, run_at=T0 + 3)],
        )
    )
    [job] = await store.lease_due_jobs(T0 + 3, 10, MINUTE)
    ended = HistoryEntry(kind=HistoryKind.RUN_COMPLETED, at=T0 + 4, data={"ok": True})
    await store.commit(world.done(job, history=[ended]))

    assert await store.run_history(run.id) == [*history, ended]
    assert await store.run_history("no-such-run") == []


async def test_commit_says_which_of_its_guarded_run_changes_applied(world: World) -> None:
    store = world.store
    first, first_job = await world.running()
    ended, ended_job = await world.running()
    active = await world.start_run()
    await store.commit(
        world.done(
            ended_job,
            run_update=RunUpdate(status=RunStatus.COMPLETED, ended_at=T0),
            clear_run_jobs=True,
        )
    )

    def cancel(run_id: str) -> RunChange:
        return RunChange(
            run_id=run_id, run_update=RunUpdate(status=RunStatus.CANCELLED), end_run=True
        )

    applied = await store.commit(
        world.done(first_job, run_changes=[cancel(ended.id), cancel(active.id)])
    )

    assert applied == [False, True]
    statuses = {r: (await store.get_run(r)) for r in (first.id, ended.id, active.id)}
    assert {r: run.status for r, run in statuses.items() if run is not None} == {
        first.id: RunStatus.SCHEDULED,
        ended.id: RunStatus.COMPLETED,
        active.id: RunStatus.CANCELLED,
    }
