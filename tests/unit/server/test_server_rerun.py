"""What a rerun starts with: its own idempotency key, the original's events and cron
context, flow control as any run, and the results of the steps completed before a step."""

from __future__ import annotations

import dataclasses

import pytest
from server_support import NOW, RUN_ID, event, function_record, registry_of, run_state

from stepwise.server.engine.rerun import RerunRefused, plan_rerun, seed_steps
from stepwise.server.store.records import HistoryEntry, HistoryKind, StepMemo


def test_a_rerun_gets_a_key_of_its_own_and_names_its_original() -> None:
    registry = registry_of(function_record(extra={"idempotency": "event.data.user_id"}))
    state = run_state()

    first = plan_rerun(registry, state, NOW)
    second = plan_rerun(registry, state, NOW)

    # The function's idempotency key would dedupe the second: each rerun claims its own.
    assert first.idempotency_key == f"rerun:{first.id}"
    assert second.idempotency_key == f"rerun:{second.id}"
    assert first.id != second.id != RUN_ID
    assert first.original_run_id == RUN_ID
    assert first.event_ids == state.run.event_ids
    assert first.seed_steps == ()
    assert first.correlation_id is None  # a rerun of an invoked run resumes no parent


def test_a_rerun_obeys_flow_control_but_is_never_held_by_a_debounce_or_a_batch() -> None:
    config = {
        "concurrency": [{"limit": 2}],
        "throttle": {"limit": 1, "period": "1m"},
        "debounce": {"period": "10s"},
        "batchEvents": {"maxSize": 5, "timeout": "10s"},
    }
    registry = registry_of(function_record(extra=config))

    new = plan_rerun(registry, run_state(), NOW)

    assert new.concurrency and new.throttle is not None
    assert new.debounce is None and new.batch is None


def test_a_batch_run_is_rerun_with_all_its_events_and_a_cron_run_with_its_schedule() -> None:
    registry = registry_of(function_record())
    events = [event(internal_id=f"evt-{i}", data={"n": i}, event_id=f"user-{i}") for i in range(3)]
    state = run_state(events=events)
    state = dataclasses.replace(
        state,
        run=dataclasses.replace(
            state.run, event_ids=tuple(e.internal_id for e in events), cron="*/5 * * * *"
        ),
    )

    new = plan_rerun(registry, state, NOW)

    assert new.event_ids == ("evt-0", "evt-1", "evt-2")
    assert new.cron == "*/5 * * * *"


def test_a_run_of_a_function_no_longer_synced_or_without_its_events_is_refused() -> None:
    with pytest.raises(RerunRefused) as gone:
        plan_rerun(registry_of(function_record("app-other")), run_state(), NOW)
    assert (gone.value.status, gone.value.code) == (409, "function_not_found")

    with pytest.raises(RerunRefused) as purged:
        plan_rerun(registry_of(function_record()), run_state(events=[]), NOW)
    assert (purged.value.status, purged.value.code) == (409, "events_not_found")


def test_steps_completed_before_the_step_are_seeded_in_completion_order() -> None:
    # p2 and p1 ran in parallel and p2 finished first: "before" is the completion order.
    steps = [
        StepMemo("a", 0, {"data": 1}),
        StepMemo("p2", 1, {"data": 2}),
        StepMemo("p1", 2, {"data": 3}),
        StepMemo("z", 3, {"error": {"name": "Error", "message": "no"}}),
    ]
    history = [
        HistoryEntry(HistoryKind.STEP_COMPLETED, NOW - 3, "a", "step a"),
        HistoryEntry(HistoryKind.STEP_COMPLETED, NOW - 2, "p2", "parallel 2"),
        HistoryEntry(HistoryKind.STEP_COMPLETED, NOW - 1, "p1", "parallel 1"),
        HistoryEntry(HistoryKind.STEP_FAILED, NOW, "z", "last"),
    ]
    state = run_state(steps=steps)

    seeded = seed_steps(state, history, "p1", NOW + 10)

    assert [(s.step_id, s.memo) for s in seeded] == [("a", {"data": 1}), ("p2", {"data": 2})]
    assert [(h.kind, h.at, h.step_id, h.name, h.data) for s in seeded for h in s.history] == [
        (HistoryKind.STEP_COMPLETED, NOW + 10, "a", "step a", {"copied_from_run_id": RUN_ID}),
        (HistoryKind.STEP_COMPLETED, NOW + 10, "p2", "parallel 2", {"copied_from_run_id": RUN_ID}),
    ]
    # A failed step has a stored result too: rerunning from it keeps everything before it.
    assert [s.step_id for s in seed_steps(state, history, "z", NOW)] == ["a", "p2", "p1"]
    assert seed_steps(state, history, "a", NOW) == ()


def test_a_step_the_run_never_completed_is_refused() -> None:
    state = run_state(steps=[StepMemo("a", 0, 1)])
    with pytest.raises(RerunRefused) as refused:
        seed_steps(state, [], "b", NOW)
    assert (refused.value.status, refused.value.code) == (400, "step_not_completed")
    assert "'b'" in refused.value.message
