"""Durable endpoints' runs: started with their first checkpoint in one transaction, stepped
by later checkpoints while active, and the stream their handler tees, kept in order."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from _clock import FAR, MINUTE, T0
from _steps import call, due_calls

from stepwise.server.store.records import (
    NO_JOB,
    AppRecord,
    CheckpointOutcome,
    EndpointOutcome,
    EndpointRecord,
    EndpointStart,
    EventRecord,
    FunctionRecord,
    HistoryEntry,
    HistoryKind,
    JobKind,
    NewJob,
    NewRun,
    RunStatus,
    RunUpdate,
    Settled,
    StreamOutcome,
    Transition,
)

if TYPE_CHECKING:
    from conftest import Make, World

APP = "127.0.0.1-9100"


def completed(step_id: str, data: Any) -> Settled:
    entry = HistoryEntry(HistoryKind.STEP_COMPLETED, T0, step_id, step_id, 0)
    return Settled(step_id, {"data": data}, (entry,))


def steps_of(run_id: str, *settled: Settled, **changes: Any) -> Transition:
    return Transition(job_id=NO_JOB, lease="", run_id=run_id, settled=list(settled), **changes)


def endpoint_start(
    make: Make, *, path: str = "/hello", body: str = "", n: int = 1
) -> EndpointStart:
    app = AppRecord(
        id=f"endpoint-app-{n}",
        name=APP,
        url="http://127.0.0.1:9100",
        sdk="js:v4.24.0",
        framework="endpoint",
        checksum="",
        created_at=T0,
        updated_at=T0,
    )
    slug = f"{APP}-get{path.replace('/', '-')}"
    function = FunctionRecord(
        id=f"endpoint-fn-{n}",
        app_id=app.id,
        slug=slug,
        name=f"GET {path}",
        config={"id": slug, "name": f"GET {path}", "triggers": [], "driver": {"type": "sync"}},
        url=f"http://127.0.0.1:9100{path}",
        created_at=T0,
    )
    event = EventRecord(
        internal_id=f"evt-endpoint-{n:04d}",
        id=f"evt-endpoint-{n:04d}",
        name="inngest/http.request",
        data={"method": "GET", "path": path, "body": body},
        user={},
        ts=T0,
        v=None,
        received_at=T0,
    )
    run_id = f"run-endpoint-{n:04d}"
    run = NewRun(
        id=run_id,
        function_id=function.id,
        function_slug=slug,
        event_ids=(event.internal_id,),
        idempotency_key=run_id,
        created_at=T0,
        started_at=T0,
    )
    endpoint = EndpointRecord(
        run_id=run_id,
        method="GET",
        url=function.url,
        content_type="",
        retries=3,
        token=f"token-{n}",
        stream_token=f"{run_id}.stream-{n}",
        created_at=T0,
    )
    first = steps_of(run_id, completed("a", "hello"))
    return EndpointStart(app, function, event, run, endpoint, first)


async def test_a_start_creates_the_app_function_and_running_run_with_no_call(
    world: World,
) -> None:
    store = world.store
    start = endpoint_start(world.make)
    version = await store.registry_version()
    assert await store.start_endpoint_run(start) == (EndpointOutcome.CREATED, start.endpoint)

    run = await store.get_run(start.run.id)
    assert run is not None
    assert (run.status, run.started_at, run.function_slug) == (
        RunStatus.RUNNING,
        T0,
        start.function.slug,
    )
    assert await store.list_steps(run.id) == [("a", {"data": "hello"})]
    assert await due_calls(world, run.id) == []  # its handler runs it: no call is due
    assert [a.name for a in await store.list_apps()] == sorted([APP, world.app.name])
    assert start.function.slug in {f.slug for f in await store.list_functions()}
    assert await store.registry_version() != version
    assert await store.get_endpoint(run.id) == start.endpoint
    kinds = [h.kind for h in await store.run_history(run.id)]
    assert kinds == [HistoryKind.RUN_STARTED, HistoryKind.STEP_COMPLETED]
    event = await store.get_event(start.event.internal_id)
    assert event is not None and event.name == "inngest/http.request"


async def test_a_second_endpoint_of_the_app_keeps_the_first_function(world: World) -> None:
    store = world.store
    first = endpoint_start(world.make, path="/one", n=1)
    second = endpoint_start(world.make, path="/two", n=2)
    assert (await store.start_endpoint_run(first))[0] is EndpointOutcome.CREATED
    assert (await store.start_endpoint_run(second))[0] is EndpointOutcome.CREATED
    slugs = {f.slug for f in await store.list_functions()}
    assert {first.function.slug, second.function.slug} <= slugs
    # A third run of the first endpoint names the function stored before.
    third = endpoint_start(world.make, path="/one", n=3)
    assert (await store.start_endpoint_run(third))[0] is EndpointOutcome.CREATED
    run = await store.get_run(third.run.id)
    assert run is not None and run.function_id == first.function.id


async def test_the_same_start_again_writes_nothing_and_returns_the_stored_endpoint(
    world: World,
) -> None:
    store = world.store
    start = endpoint_start(world.make)
    await store.start_endpoint_run(start)
    again = replace(start, endpoint=replace(start.endpoint, token="other"))
    assert await store.start_endpoint_run(again) == (EndpointOutcome.REPEATED, start.endpoint)
    assert await store.list_steps(start.run.id) == [("a", {"data": "hello"})]
    history = await store.run_history(start.run.id)
    assert len(history) == 2

    # The same run id with another request is refused.
    other = replace(start, event=replace(start.event, internal_id="evt-x", data={"other": 1}))
    assert await store.start_endpoint_run(other) == (EndpointOutcome.RUN_EXISTS, None)


async def test_a_run_id_taken_by_an_ordinary_run_is_refused(world: World) -> None:
    store = world.store
    ordinary = await world.start_run()
    start = endpoint_start(world.make)
    start = replace(start, run=replace(start.run, id=ordinary.id))
    assert await store.start_endpoint_run(start) == (EndpointOutcome.RUN_EXISTS, None)
    assert await store.get_endpoint(ordinary.id) is None


async def test_a_function_slug_of_another_app_refuses_the_start_whole(world: World) -> None:
    store = world.store
    start = endpoint_start(world.make)
    taken = replace(
        start,
        function=replace(start.function, slug=world.fn.slug),
        run=replace(start.run, function_slug=world.fn.slug),
    )
    assert await store.start_endpoint_run(taken) == (EndpointOutcome.FUNCTION_TAKEN, None)
    assert await store.get_run(start.run.id) is None
    assert APP not in {a.name for a in await store.list_apps()}
    assert await store.get_event(start.event.internal_id) is None


async def test_later_checkpoints_apply_only_to_an_active_endpoint_run(world: World) -> None:
    store = world.store
    start = endpoint_start(world.make)
    await store.start_endpoint_run(start)
    run_id = start.run.id

    saved = await store.save_endpoint_steps(steps_of(run_id, completed("b", 2)))
    assert saved is CheckpointOutcome.SAVED
    assert [s for s, _ in await store.list_steps(run_id)] == ["a", "b"]
    assert await due_calls(world, run_id) == []

    # Going async: a step's wake-up and the run's next job commit with it.
    wake = NewJob(run_id=run_id, kind=JobKind.WAKE, run_at=T0, step_id="nap", key="wake:nap")
    assert await store.save_endpoint_steps(steps_of(run_id, new_jobs=[wake])) is (
        CheckpointOutcome.SAVED
    )
    [job] = await due_calls(world, run_id)
    assert (job.kind, job.step_id) == (JobKind.WAKE, "nap")

    missing = steps_of("run-none", completed("x", 1))
    assert await store.save_endpoint_steps(missing) is CheckpointOutcome.NO_RUN
    ordinary = await world.start_run()
    not_endpoint = steps_of(ordinary.id, completed("x", 1))
    assert await store.save_endpoint_steps(not_endpoint) is CheckpointOutcome.NOT_ENDPOINT
    assert await store.list_steps(ordinary.id) == []


async def test_a_checkpoint_that_completes_the_run_ends_it_and_later_ones_write_nothing(
    world: World,
) -> None:
    store = world.store
    start = endpoint_start(world.make)
    await store.start_endpoint_run(start)
    run_id = start.run.id
    pending = NewJob(run_id=run_id, kind=JobKind.WAKE, run_at=FAR, step_id="later", key="w")
    await store.save_endpoint_steps(steps_of(run_id, new_jobs=[pending]))
    result = {"status": 200, "headers": {}, "body": '"hi"', "version": 2}
    end = steps_of(
        run_id,
        run_update=RunUpdate(
            status=RunStatus.COMPLETED, output=result, has_output=True, ended_at=T0 + 1
        ),
        clear_run_jobs=True,
        ending=HistoryEntry(HistoryKind.RUN_COMPLETED, T0 + 1),
    )
    assert await store.save_endpoint_steps(end) is CheckpointOutcome.SAVED
    run = await store.get_run(run_id)
    assert run is not None and (run.status, run.output) == (RunStatus.COMPLETED, result)
    assert [j for j in await world.drain() if j.run_id == run_id] == []

    late = steps_of(run_id, completed("c", 3), continue_with=call(run_id, "c"))
    assert await store.save_endpoint_steps(late) is CheckpointOutcome.RUN_ENDED
    assert "c" not in {s for s, _ in await store.list_steps(run_id)}


async def test_a_stream_keeps_its_chunks_in_order_within_its_limit(world: World) -> None:
    store = world.store
    start = endpoint_start(world.make)
    await store.start_endpoint_run(start)
    run_id = start.run.id
    frames = [b"event: inngest.metadata\ndata: {}\n\n", b"event: a\ndata: 1\n\n"]
    assert await store.append_stream(run_id, frames, 1000) is StreamOutcome.APPENDED
    assert await store.append_stream(run_id, [b"x" * 10], 1000) is StreamOutcome.APPENDED
    assert await store.read_stream(run_id, -1, 100) == [
        (0, frames[0]),
        (1, frames[1]),
        (2, b"x" * 10),
    ]
    assert await store.read_stream(run_id, 1, 1) == [(2, b"x" * 10)]
    stored = await store.get_endpoint(run_id)
    assert stored is not None
    assert (stored.stream_seq, stored.stream_bytes) == (3, sum(map(len, frames)) + 10)

    # Over the limit, nothing of the append is kept.
    assert await store.append_stream(run_id, [b"y", b"z" * 2000], 1000) is StreamOutcome.FULL
    assert len(await store.read_stream(run_id, -1, 100)) == 3
    assert await store.append_stream("run-none", [b"a"], 1000) is StreamOutcome.NOT_ENDPOINT
    ordinary = await world.start_run()
    assert await store.append_stream(ordinary.id, [b"a"], 1000) is StreamOutcome.NOT_ENDPOINT


async def test_retention_deletes_a_finished_endpoint_run_with_its_stream(world: World) -> None:
    store = world.store
    start = endpoint_start(world.make)
    await store.start_endpoint_run(start)
    run_id = start.run.id
    await store.append_stream(run_id, [b"data: 1\n\n"], 1000)
    end = steps_of(
        run_id,
        run_update=RunUpdate(status=RunStatus.COMPLETED, has_output=True, ended_at=T0),
        clear_run_jobs=True,
    )
    await store.save_endpoint_steps(end)
    assert await store.purge_finished(T0 + MINUTE, 100) >= 1
    assert await store.get_run(run_id) is None
    assert await store.get_endpoint(run_id) is None
    assert await store.read_stream(run_id, -1, 100) == []
