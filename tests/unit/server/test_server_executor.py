"""The executor turns one SDK reply (or one timer) into exactly one ``Transition``.

Reference: protocol §3 (status codes, X-Inngest-No-Retry, Retry-After), §4 (opcodes and
memo shapes), §8 (function.finished / function.failed) and §11 (retries and backoff).
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from server_support import (
    NOW,
    RUN_ID,
    event,
    function_record,
    job,
    make_executor,
    reply,
    run_state,
    spec,
)

from stepwise.protocol import RUN_COMPLETE_ID, to_iso
from stepwise.protocol import events as ev
from stepwise.server.engine.driver import USE_API_BYTES, build_call_body
from stepwise.server.engine.executor import MAX_RUN_STATE, MAX_SLEEP, Executor, next_cron_ms
from stepwise.server.store.records import (
    EventRecord,
    HistoryEntry,
    HistoryKind,
    Ingest,
    JobKind,
    NewJob,
    NewRun,
    Pause,
    PauseKind,
    PlannedStep,
    RunState,
    RunStatus,
    RunUpdate,
    Settled,
    Transition,
)

# The default test function allows 2 retries: attempts 0, 1 and 2.
LAST_ATTEMPT = 2
SDK_ERROR = {"name": "TypeError", "message": "boom", "stack": "at step (app.js:1)"}
# function.failed's error for a 500 with that body (the run's output is the body itself).
EVENT_ERROR_500 = {"error": "invalid status code: 500", **SDK_ERROR}


def call_after(step_id: str) -> NewJob:
    """The discovery call that follows ``step_id``."""
    return NewJob(run_id=RUN_ID, kind=JobKind.CALL, run_at=NOW, key=f"discovery:{RUN_ID}:{step_id}")


def base(**fields: Any) -> Transition:
    """The transition of the default job, with only ``fields`` different."""
    return Transition(job_id=7, lease="lease-7", run_id=RUN_ID, **fields)


def handle(
    body_or_reply: Any,
    *,
    status: int = 206,
    attempt: int = 0,
    state: RunState | None = None,
    executor: Executor | None = None,
    headers: dict[str, str] | None = None,
) -> Transition:
    if executor is None:
        executor, _ = make_executor(function_record())
    sdk_reply = (
        body_or_reply
        if hasattr(body_or_reply, "transport_error")
        else reply(status, body_or_reply, headers=headers)
    )
    return executor.handle_reply(job(attempt=attempt), state or run_state(), spec(), sdk_reply, NOW)


def finish_events(t: Transition) -> list[EventRecord]:
    assert t.ingest is not None
    return t.ingest.events


def assert_backoff(retry_at: int | None, attempt: int = 0) -> None:
    table = [15, 30, 60, 120, 300, 600, 1200, 2400, 3600, 7200]
    low = table[min(attempt, len(table) - 1)] * 1000
    assert retry_at is not None
    assert NOW + low <= retry_at <= NOW + low + 30_000


# ---- 200: the function finished ---------------------------------------------------


def test_200_completes_the_run_and_emits_function_finished() -> None:
    listener = function_record(
        "app-on-finished", triggers=[{"event": ev.FUNCTION_FINISHED}], fn_id="uuid-listener"
    )
    executor, _ = make_executor(function_record(), listener)
    t = handle({"answer": 42}, status=200, executor=executor)

    assert t.ingest is not None
    [finished] = t.ingest.events
    [listener_run] = t.ingest.runs
    trigger_event = event().to_wire()
    assert finished == EventRecord(
        internal_id=finished.internal_id,
        id=finished.internal_id,
        name=ev.FUNCTION_FINISHED,
        data={
            "function_id": "app-fn",
            "run_id": RUN_ID,
            "event": trigger_event,
            "events": [trigger_event],
            "result": {"answer": 42},
            "_inngest": {"status": "Completed"},
        },
        user={},
        ts=NOW,
        v=None,
        received_at=NOW,
    )
    assert listener_run == NewRun(
        id=listener_run.id,
        function_id="uuid-listener",
        function_slug="app-on-finished",
        event_ids=(finished.internal_id,),
        idempotency_key=finished.internal_id,
        created_at=NOW,
    )
    assert t == base(
        run_update=RunUpdate(
            status=RunStatus.COMPLETED,
            output={"answer": 42},
            has_output=True,
            started_at=NOW,
            ended_at=NOW,
        ),
        clear_run_jobs=True,
        ingest=Ingest(events=[finished], runs=[listener_run]),
        ending=HistoryEntry(HistoryKind.RUN_COMPLETED, NOW),
    )


def test_200_with_null_body_completes_with_null_result_and_no_listener_runs() -> None:
    t = handle(None, status=200)
    assert t.run_update == RunUpdate(
        status=RunStatus.COMPLETED, output=None, has_output=True, started_at=NOW, ended_at=NOW
    )
    [finished] = finish_events(t)
    assert finished.data["result"] is None
    assert t.ingest is not None and t.ingest.runs == []


def test_first_reply_of_a_scheduled_run_starts_it() -> None:
    t = handle(
        [{"op": "DiscoveryRequest", "id": "d"}],
        state=run_state(status=RunStatus.SCHEDULED),
    )
    assert t == base(
        run_update=RunUpdate(status=RunStatus.RUNNING, started_at=NOW),
        new_jobs=[call_after("d")],
        history=[HistoryEntry(HistoryKind.RUN_STARTED, NOW)],
    )


# ---- 206: ops ---------------------------------------------------------------------


def test_step_run_memoizes_data_and_asks_for_discovery() -> None:
    ops = [{"op": "StepRun", "id": "s1", "name": "s1", "displayName": "Fetch", "data": [1, 2]}]
    entry = HistoryEntry(HistoryKind.STEP_COMPLETED, NOW, "s1", "Fetch", 0)
    assert handle(ops) == base(
        settled=[Settled("s1", {"data": [1, 2]}, (entry,))],
        continue_with=call_after("s1"),
    )


def test_step_run_name_falls_back_to_userland_id_then_name() -> None:
    ops = [
        {"op": "StepRun", "id": "h1", "name": "n1", "userland": {"id": "raw-id"}, "data": 1},
        {"op": "StepRun", "id": "h2", "name": "n2", "data": 2},
    ]
    t = handle(ops)
    names = [(e.step_id, e.name) for s in t.settled for e in s.history]
    assert names == [("h1", "raw-id"), ("h2", "n2")]


def test_a_step_s_input_is_kept_in_its_history_when_the_sdk_sends_it() -> None:
    # The JS SDK sends step.run's arguments as opts.input (an array); the Python SDKs none.
    ops = [
        {
            "op": "StepRun",
            "id": "s1",
            "name": "s1",
            "opts": {"type": "step.run", "input": [{"to": "a@b.c"}, 3]},
            "data": "sent",
        },
        {"op": "StepRun", "id": "s2", "name": "s2", "opts": {"input": []}, "data": 1},
        {"op": "StepPlanned", "id": "p1", "name": "p1", "opts": {"input": ["x"]}},
    ]
    t = handle(ops)
    assert [e.data for s in t.settled for e in s.history] == [
        {"input": [{"to": "a@b.c"}, 3]},
        None,
    ]
    assert [e.data for p in t.planned for e in p.history] == [{"input": ["x"]}]


def test_legacy_step_op_memoizes_raw_data() -> None:
    ops = [{"op": "Step", "id": "s1", "name": "s1", "data": {"data": "already wrapped"}}]
    entry = HistoryEntry(HistoryKind.STEP_COMPLETED, NOW, "s1", "s1", 0)
    assert handle(ops) == base(
        settled=[Settled("s1", {"data": "already wrapped"}, (entry,))],
        continue_with=call_after("s1"),
    )
    raw = handle([{"op": "Step", "id": "s2", "data": 5}])
    assert [(s.step_id, s.memo) for s in raw.settled] == [("s2", 5)]


def test_step_error_with_attempts_left_is_retried_with_table_backoff() -> None:
    t = handle([{"op": "StepError", "id": "s1", "name": "s1", "error": SDK_ERROR}])
    assert_backoff(t.retry_at)
    assert t == base(
        retry_at=t.retry_at,
        history=[
            HistoryEntry(
                HistoryKind.STEP_ERRORED,
                NOW,
                "s1",
                "s1",
                0,
                {"error": SDK_ERROR, "retry_at": t.retry_at},
            )
        ],
    )


@pytest.mark.parametrize("attempt", [1, 3])
def test_step_error_backoff_follows_the_attempt(attempt: int) -> None:
    executor, _ = make_executor(function_record(retries=10))
    ops = [{"op": "StepError", "id": "s1", "error": SDK_ERROR}]
    t = executor.handle_reply(
        job(attempt=attempt),
        run_state(),
        spec(function_record(retries=10)),
        reply(206, ops),
        NOW,
    )
    assert_backoff(t.retry_at, attempt)


def test_step_error_with_a_fixed_retry_interval() -> None:
    executor, _ = make_executor(function_record(), retry_interval_s=3)
    t = handle([{"op": "StepError", "id": "s1", "error": SDK_ERROR}], executor=executor)
    assert t.retry_at == NOW + 3_000
    assert t.settled == [] and t.new_jobs == [] and t.continue_with is None


def _step_failed(step_id: str, error: dict[str, Any], attempt: int | None) -> Transition:
    entry = HistoryEntry(HistoryKind.STEP_FAILED, NOW, step_id, step_id, attempt, {"error": error})
    return base(
        settled=[Settled(step_id, {"error": error}, (entry,))],
        continue_with=call_after(step_id),
    )


def test_step_error_on_the_last_attempt_memoizes_the_error() -> None:
    ops = [{"op": "StepError", "id": "s1", "name": "s1", "error": SDK_ERROR}]
    assert handle(ops, attempt=LAST_ATTEMPT) == _step_failed("s1", SDK_ERROR, LAST_ATTEMPT)


def test_step_error_with_no_retry_header_memoizes_the_error_at_once() -> None:
    ops = [{"op": "StepError", "id": "s1", "name": "s1", "error": SDK_ERROR}]
    t = handle(ops, headers={"X-Inngest-No-Retry": "true"})
    assert t == _step_failed("s1", SDK_ERROR, 0)
    # Anything but "true" still retries.
    assert handle(ops, headers={"X-Inngest-No-Retry": "false"}).retry_at is not None


def test_step_failed_memoizes_the_error() -> None:
    ops = [{"op": "StepFailed", "id": "s1", "name": "s1", "error": SDK_ERROR}]
    assert handle(ops) == _step_failed("s1", SDK_ERROR, 0)


def test_step_error_with_a_string_error_is_normalized() -> None:
    ops = [{"op": "StepFailed", "id": "s1", "name": "s1", "error": "plain text"}]
    error = {"name": "Error", "message": "plain text"}
    assert handle(ops) == _step_failed("s1", error, 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", NOW + 120_000),
        ("2.5", NOW + 2_500),
        ("0", NOW + 1_000),  # clamped up to 1 s
        ("-50", NOW + 1_000),
        ("999999", NOW + 24 * 3600_000),  # clamped down to 24 h
        (to_iso(datetime.fromtimestamp((NOW + 90_000) / 1000, UTC)), NOW + 90_000),
        ("2023-11-14T22:15:20Z", NOW + 120_000),
        ("2023-11-14T23:13:20+01:00", NOW + 1_000),  # == NOW: clamped
        ("2001-01-01T00:00:00Z", NOW + 1_000),
        ("2099-01-01T00:00:00Z", NOW + 24 * 3600_000),
    ],
)
def test_retry_after_overrides_the_backoff(value: str, expected: int) -> None:
    ops = [{"op": "StepError", "id": "s1", "error": SDK_ERROR}]
    assert handle(ops, headers={"Retry-After": value}).retry_at == expected
    failed = handle(SDK_ERROR, status=500, headers={"Retry-After": value})
    assert failed.retry_at == expected


def test_unreadable_retry_after_falls_back_to_the_backoff() -> None:
    ops = [{"op": "StepError", "id": "s1", "error": SDK_ERROR}]
    assert_backoff(handle(ops, headers={"Retry-After": "soon"}).retry_at)


def test_retry_after_also_overrides_a_fixed_retry_interval() -> None:
    executor, _ = make_executor(function_record(), retry_interval_s=3)
    ops = [{"op": "StepError", "id": "s1", "error": SDK_ERROR}]
    t = handle(ops, executor=executor, headers={"Retry-After": "60"})
    assert t.retry_at == NOW + 60_000


def test_step_planned_enqueues_a_targeted_call() -> None:
    ops = [{"op": "StepPlanned", "id": "p1", "name": "p1", "displayName": "Plan A"}]
    call = NewJob(
        run_id=RUN_ID, kind=JobKind.CALL, run_at=NOW, step_id="p1", key=f"step:{RUN_ID}:p1"
    )
    entry = HistoryEntry(HistoryKind.STEP_PLANNED, NOW, "p1", "Plan A")
    assert handle(ops) == base(planned=[PlannedStep("p1", jobs=(call,), history=(entry,))])


def test_two_ops_force_step_planning_from_now_on_and_make_a_batch() -> None:
    ops = [
        {"op": "StepPlanned", "id": "p1", "name": "p1"},
        {"op": "StepPlanned", "id": "p2", "name": "p2"},
    ]
    t = handle(ops)
    assert t.run_update == RunUpdate(force_step_plan=True)
    assert [(p.step_id, p.batch, p.race) for p in t.planned] == [
        ("p1", True, False),
        ("p2", True, False),
    ]
    assert [j.key for p in t.planned for j in p.jobs] == [f"step:{RUN_ID}:p1", f"step:{RUN_ID}:p2"]
    # Already forced: nothing to update.
    assert handle(ops, state=run_state(force_step_plan=True)).run_update is None
    # A "None" op is no op at all.
    single = handle([ops[0], {"op": "None", "id": ""}])
    assert single.run_update is None and [p.batch for p in single.planned] == [False]


def test_a_race_and_request_version_1_make_no_batch() -> None:
    race = [
        {"op": "StepPlanned", "id": "p1", "opts": {"parallelMode": "race"}},
        {"op": "StepPlanned", "id": "p2", "opts": {"parallelMode": "race"}},
    ]
    assert [(p.batch, p.race) for p in handle(race).planned] == [(False, True), (False, True)]
    assert [p.jobs[0].payload for p in handle(race).planned] == [{"race": True}] * 2
    plain = [{"op": "StepPlanned", "id": "p1"}, {"op": "StepPlanned", "id": "p2"}]
    v1 = handle(plain, state=run_state(request_version=1))
    assert [(p.batch, p.race) for p in v1.planned] == [(False, False), (False, False)]


def _wake(step_id: str, name: str, at: int) -> Transition:
    alarm = NewJob(
        run_id=RUN_ID,
        kind=JobKind.WAKE,
        run_at=at,
        step_id=step_id,
        key=f"wake:{RUN_ID}:{step_id}",
        payload={"name": name},
    )
    entry = HistoryEntry(
        HistoryKind.SLEEP_STARTED,
        NOW,
        step_id,
        name,
        None,
        {"until": to_iso(datetime.fromtimestamp(at / 1000, UTC))},
    )
    return base(planned=[PlannedStep(step_id, jobs=(alarm,), history=(entry,))])


def test_sleep_with_a_duration_name() -> None:
    ops = [{"op": "Sleep", "id": "z1", "name": "1h30m", "displayName": "nap"}]
    assert handle(ops) == _wake("z1", "nap", NOW + 90 * 60_000)


def test_sleep_until_an_iso_date() -> None:
    ops = [{"op": "Sleep", "id": "z1", "name": "2023-11-15T00:00:00.000Z"}]
    at = int(datetime(2023, 11, 15, tzinfo=UTC).timestamp() * 1000)
    assert handle(ops) == _wake("z1", "2023-11-15T00:00:00.000Z", at)


def test_sleep_opts_duration_wins_over_the_name() -> None:
    ops = [{"op": "Sleep", "id": "z1", "name": "nap", "opts": {"duration": "10s"}}]
    assert handle(ops) == _wake("z1", "nap", NOW + 10_000)


@pytest.mark.parametrize("name", ["9000h", "2030-01-01T00:00:00Z", "400d"])
def test_sleep_longer_than_366_days_is_clamped(name: str) -> None:
    ops = [{"op": "Sleep", "id": "z1", "name": name}]
    max_ms = int(MAX_SLEEP.total_seconds() * 1000)
    assert handle(ops) == _wake("z1", name, NOW + max_ms)


@pytest.mark.parametrize("name", ["banana", "-5s", "", "1e400h"])
def test_invalid_sleep_memoizes_an_error(name: str) -> None:
    ops = [{"op": "Sleep", "id": "z1", "name": name}]
    error = {"name": "Error", "message": f"invalid sleep duration {name!r}"}
    entry = HistoryEntry(HistoryKind.STEP_FAILED, NOW, "z1", name, None, {"error": error})
    assert handle(ops) == base(
        settled=[Settled("z1", {"error": error}, (entry,))], continue_with=call_after("z1")
    )


def test_run_complete_finishes_the_run_with_its_data() -> None:
    ops = [
        {"op": "StepRun", "id": "s1", "name": "s1", "data": 1},
        {"op": "RunComplete", "id": RUN_COMPLETE_ID, "data": {"ok": True}},
    ]
    t = handle(ops)
    assert t.run_update == RunUpdate(
        status=RunStatus.COMPLETED,
        output={"ok": True},
        has_output=True,
        force_step_plan=True,
        started_at=NOW,
        ended_at=NOW,
    )
    assert [(s.step_id, s.memo) for s in t.settled] == [("s1", {"data": 1})]
    assert t.new_jobs == []
    assert t.clear_run_jobs is True
    [finished] = finish_events(t)
    assert finished.data["result"] == {"ok": True}
    assert [h.kind for s in t.settled for h in s.history] == [HistoryKind.STEP_COMPLETED]
    assert t.ending == HistoryEntry(HistoryKind.RUN_COMPLETED, NOW)


def test_discovery_request_enqueues_discovery() -> None:
    assert handle([{"op": "DiscoveryRequest", "id": "abc"}]) == base(new_jobs=[call_after("abc")])


def test_empty_206_does_nothing() -> None:
    assert handle([]) == base()


def test_only_empty_none_ops_drive_discovery_again_a_bounded_number_of_times() -> None:
    t = handle([{"op": "None"}, {"op": "None", "id": ""}])
    redrive = NewJob(
        run_id=RUN_ID,
        kind=JobKind.CALL,
        run_at=NOW,
        key=f"discovery:{RUN_ID}:redrive:7",
        payload={"redrive": 1},
    )
    assert t == base(new_jobs=[redrive])
    # A None op that names a step is a finished thread of a parallel batch, not a stall.
    assert handle([{"op": "None", "id": "p1"}]) == base()
    executor, _ = make_executor(function_record())
    again = executor.handle_reply(
        job(payload={"redrive": 10}), run_state(), spec(), reply(206, [{"op": "None"}]), NOW
    )
    assert again.run_update is not None and again.run_update.status is RunStatus.FAILED


@pytest.mark.parametrize("op", ["DeferAdd", "deferabort", "SyncRunComplete"])
def test_unsupported_op_memoizes_not_supported_error(op: str) -> None:
    ops = [{"op": op, "id": "w1", "name": "x", "opts": {}}]
    t = handle(ops)
    [result] = t.settled
    assert result.step_id == "w1"
    assert result.memo["error"]["name"] == "NotSupportedError"
    assert "not supported" in result.memo["error"]["message"]
    assert t.continue_with == call_after("w1")
    assert t.run_update is None and t.retry_at is None


AI_OPTS = {
    "type": "step.ai.infer",
    "url": "https://api.example.com/v1/chat/completions?api_key=sk-in-the-url",
    "headers": {"Authorization": "Bearer sk-secret-1234", "openai-organization": "org-1"},
    "auth_key": "sk-secret-1234",
    "format": "openai-chat",
    "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
}


@pytest.mark.parametrize("op", ["AIGateway", "aigateway", "AiGateway"])
def test_ai_gateway_plans_a_job_and_keeps_the_request_without_its_secrets(op: str) -> None:
    t = handle([{"op": op, "id": "a1", "displayName": "ask", "opts": AI_OPTS}])
    assert t.settled == [] and t.continue_with is None and t.retry_at is None
    [planned] = t.planned
    [infer] = planned.jobs
    assert (infer.kind, infer.step_id, infer.key) == (
        JobKind.AI_GATEWAY,
        "a1",
        f"ai_gateway:{RUN_ID}:a1",
    )
    assert infer.payload is not None and infer.payload["opts"]["auth_key"] == "sk-secret-1234"
    [entry] = planned.history
    assert (entry.kind, entry.name) == (HistoryKind.STEP_PLANNED, "ask")
    assert entry.data["type"] == "step.ai.infer"
    kept = entry.data["request"]
    assert "sk-secret" not in repr(kept) and "sk-in-the-url" not in repr(kept)
    assert kept["headers"] == {"Authorization": "[redacted]", "openai-organization": "org-1"}
    assert kept["url"] == "https://api.example.com/v1/chat/completions?api_key=[redacted]"
    assert kept["body"] == AI_OPTS["body"] and kept["auth_key"] == "[redacted]"


@pytest.mark.parametrize(
    ("opts", "because"),
    [
        (None, "carries no options"),
        ({**AI_OPTS, "url": 12}, "url"),
        ({**AI_OPTS, "url": "file:///etc/passwd"}, "http(s) URL"),
        ({k: v for k, v in AI_OPTS.items() if k != "body"}, "body"),
        ({**AI_OPTS, "auth_key": ["sk-secret-1234"]}, "auth_key"),
    ],
    ids=["no-opts", "url-not-text", "not-http", "no-body", "key-not-text"],
)
def test_ai_gateway_with_unusable_options_fails_the_step_without_echoing_values(
    opts: Any, because: str
) -> None:
    t = handle([{"op": "AIGateway", "id": "a1", "opts": opts}])
    assert t.planned == []
    [result] = t.settled
    error = result.memo["error"]
    assert error["name"] == "AIGatewayError" and because in error["message"]
    assert "sk-secret" not in error["message"]
    assert t.continue_with == call_after("a1")


def test_ai_wrap_keeps_its_input_with_credentials_hidden() -> None:
    opts = {
        "type": "step.ai.wrap",
        "input": [{"prompt": "hi", "api_key": "sk-arg", "max_tokens": 5}],
    }
    ops = [{"op": "StepRun", "id": "w1", "displayName": "call-model", "opts": opts, "data": "ok"}]
    t = handle(ops)
    [result] = t.settled
    [entry] = result.history
    assert entry.kind is HistoryKind.STEP_COMPLETED
    assert entry.data == {
        "type": "step.ai.wrap",
        "input": [{"prompt": "hi", "api_key": "[redacted]", "max_tokens": 5}],
    }


def test_wait_for_event_writes_an_indexed_pause_and_its_timeout() -> None:
    ops = [
        {
            "op": "WaitForEvent",
            "id": "w1",
            "name": "app/approved",
            "displayName": "approval",
            "opts": {"timeout": "1h", "if": "async.data.user_id == event.data.user_id"},
        }
    ]
    t = handle(ops)
    assert t.settled == [] and t.continue_with is None
    [planned] = t.planned
    pause = planned.pause
    assert pause is not None
    assert (
        pause.kind.value == "wait" and pause.event_name == "app/approved" and pause.step_id == "w1"
    )
    # The trigger's user_id (42) is interpolated: only the incoming event is left to check.
    assert pause.expression is not None and "event." not in pause.expression
    assert pause.index_path == "data.user_id"
    assert pause.expires_at == NOW + 3_600_000
    [timeout] = planned.jobs
    assert timeout.run_at == NOW + 3_600_000 and timeout.payload == {"pause": pause.key}
    assert [h.kind for h in planned.history] == [HistoryKind.WAIT_STARTED]
    # What it waits for, for the run's page.
    assert planned.history[0].data == {
        "until": to_iso(datetime.fromtimestamp((NOW + 3_600_000) / 1000, UTC)),
        "event": "app/approved",
        "if": "async.data.user_id == event.data.user_id",
    }


def test_a_fetch_s_history_keeps_its_method_and_url_without_query_or_credentials() -> None:
    ops = [
        {
            "op": "Gateway",
            "id": "f1",
            "name": "f1",
            "opts": {
                "url": "https://user:pw@api.example.com:8443/v1/items?token=secret#top",
                "method": "post",
                "headers": {"Authorization": "Bearer secret"},
                "body": "secret",
            },
        },
        {"op": "Gateway", "id": "f2", "name": "f2", "opts": {"url": "http://[::1"}},
    ]
    t = handle(ops)
    assert [e.data for p in t.planned for e in p.history] == [
        {"fetch": {"method": "POST", "url": "https://api.example.com:8443/v1/items"}},
        {"fetch": {"method": "GET", "url": "(not a URL)"}},
    ]
    assert "secret" not in repr([p.history for p in t.planned])


def test_a_targeted_call_that_does_not_settle_its_step_abandons_it() -> None:
    executor, _ = make_executor(function_record())

    def targeted(body: Any) -> Transition:
        return executor.handle_reply(job(step_id="p2"), run_state(), spec(), reply(206, body), NOW)

    assert targeted([]) == base(abandoned=["p2"], continue_with=call_after("p2"))
    found = targeted([{"op": "StepPlanned", "id": "p9", "name": "p9"}])
    assert found.abandoned == ["p2"] and [p.step_id for p in found.planned] == ["p9"]
    ran = targeted([{"op": "StepRun", "id": "p2", "name": "p2", "data": 1}])
    assert ran.abandoned == [] and ran.continue_with == call_after("p2")
    # A retried step is not abandoned: its job stays.
    retried = targeted([{"op": "StepError", "id": "p2", "error": SDK_ERROR}])
    assert retried.abandoned == [] and retried.retry_at is not None


def _signal_wait(conflict: str | None) -> list[dict[str, Any]]:
    opts = {"signal": "order-1", "timeout": "1h"}
    if conflict is not None:
        opts["conflict"] = conflict
    return [{"op": "WaitForSignal", "id": "s1", "name": "order-1", "opts": opts}]


@pytest.mark.parametrize(
    ("conflict", "steals"), [(None, False), ("fail", False), ("replace", True)]
)
def test_a_signal_wait_says_whether_it_may_take_a_signal_over(
    conflict: str | None, steals: bool
) -> None:
    [planned] = handle(_signal_wait(conflict)).planned
    assert planned.pause is not None and planned.pause.steal_signal is steals


def test_a_signal_wait_in_fail_mode_fails_the_run_when_another_run_holds_it() -> None:
    executor, _ = make_executor(function_record())
    holder = Pause(
        id=1,
        key="signal:other:s1",
        run_id="other-run",
        kind=PauseKind.SIGNAL,
        created_at=NOW,
        step_id="s1",
        event_name=None,
        expression=None,
        signal="order-1",
        expires_at=None,
        data=None,
    )
    t = executor.handle_reply(
        job(),
        run_state(),
        spec(),
        reply(206, _signal_wait(None)),
        NOW,
        signal_owners={"order-1": holder},
    )
    message = "Signal conflict; signal wait already exists for another run"
    assert t.run_update is not None and t.run_update.status is RunStatus.FAILED
    assert t.run_update.output == {"name": "Error", "message": message}
    assert t.planned == []


# ---- errors of the whole request --------------------------------------------------


def assert_run_failed(t: Transition, output: Any, error: dict[str, Any], attempt: int = 0) -> None:
    """The run failed: ``output`` is what the API shows, ``error`` what the events carry."""
    finished, failed = finish_events(t)
    trigger_event = event().to_wire()
    data = {
        "function_id": "app-fn",
        "run_id": RUN_ID,
        "event": trigger_event,
        "events": [trigger_event],
        "error": error,
        "result": output,
        "_inngest": {"status": "Failed"},
    }
    assert failed == EventRecord(
        internal_id=failed.internal_id,
        id=RUN_ID,
        name=ev.FUNCTION_FAILED,
        data=data,
        user={},
        ts=NOW,
        v=None,
        received_at=NOW,
    )
    assert finished == EventRecord(
        internal_id=finished.internal_id,
        id=finished.internal_id,
        name=ev.FUNCTION_FINISHED,
        data=data,
        user={},
        ts=NOW,
        v=None,
        received_at=NOW,
    )
    assert failed.internal_id != finished.internal_id
    assert t == base(
        run_update=RunUpdate(
            status=RunStatus.FAILED,
            output=output,
            has_output=True,
            error=error,
            started_at=NOW,
            ended_at=NOW,
        ),
        clear_run_jobs=True,
        ingest=Ingest(events=[finished, failed], runs=[]),
        ending=HistoryEntry(HistoryKind.RUN_FAILED, NOW, None, None, attempt, {"error": output}),
    )


def test_500_with_no_retry_fails_the_run() -> None:
    t = handle(SDK_ERROR, status=500, headers={"X-Inngest-No-Retry": "true"})
    # How the attempt failed, in the reference's words: the SDK said not to retry.
    assert_run_failed(t, SDK_ERROR, {**EVENT_ERROR_500, "error": "NonRetriableError"})


def test_the_run_output_is_the_sdk_error_body_exactly() -> None:
    # The Python SDK's body: its "code" and a null "stack" stay as sent.
    body = {
        "code": "non_retriable_error",
        "message": "foo",
        "name": "NonRetriableError",
        "stack": None,
    }
    t = handle(body, status=500, headers={"X-Inngest-No-Retry": "true"})
    event_error = {
        "error": "NonRetriableError",
        "name": "NonRetriableError",
        "message": "foo",
    }
    assert_run_failed(t, body, event_error)


def test_400_with_no_retry_fails_the_run_and_keeps_an_sdk_error_field() -> None:
    body = {"name": "NonRetriableError", "message": "nope", "error": "custom text"}
    t = handle(body, status=400, headers={"x-inngest-no-retry": "TRUE"})
    assert_run_failed(
        t, body, {"name": "NonRetriableError", "message": "nope", "error": "custom text"}
    )


def test_500_with_attempts_left_is_retried() -> None:
    t = handle(SDK_ERROR, status=500)
    assert_backoff(t.retry_at)
    assert t == base(
        retry_at=t.retry_at,
        history=[
            HistoryEntry(
                HistoryKind.ATTEMPT_FAILED,
                NOW,
                None,
                None,
                0,
                {"error": SDK_ERROR, "retry_at": t.retry_at},
            )
        ],
    )


def test_500_on_the_last_attempt_fails_the_run() -> None:
    t = handle(SDK_ERROR, status=500, attempt=LAST_ATTEMPT)
    assert_run_failed(t, SDK_ERROR, EVENT_ERROR_500, LAST_ATTEMPT)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_4xx_without_no_retry_is_retried(status: int) -> None:
    t = handle(SDK_ERROR, status=status)
    assert_backoff(t.retry_at)
    assert t.run_update is None and t.ingest is None


def test_function_with_zero_retries_fails_on_the_first_error() -> None:
    record = function_record(retries=0)
    executor, _ = make_executor(record)
    t = executor.handle_reply(job(), run_state(), spec(record), reply(500, SDK_ERROR), NOW)
    assert t.run_update is not None and t.run_update.status is RunStatus.FAILED


def test_non_sdk_error_reply_gets_a_synthesized_error() -> None:
    sdk_reply = reply(502, None, sdk=False, raw=b"<html>Bad Gateway</html>")
    t = handle(sdk_reply, attempt=LAST_ATTEMPT)
    message = "Your server returned HTTP 502 before the SDK responded."
    assert t.run_update is not None
    output = t.run_update.output
    assert output["name"] == "Server returned a fatal error"
    assert output["message"] == output["error"] == message
    assert output["stack"].endswith("<html>Bad Gateway</html>")
    assert_run_failed(t, output, output, LAST_ATTEMPT)


def test_sdk_error_with_unparsed_body_uses_the_raw_text() -> None:
    sdk_reply = reply(500, None, raw=b"kaboom", headers={"X-Inngest-No-Retry": "true"})
    t = handle(sdk_reply)
    assert_run_failed(
        t,
        {"name": "Error", "message": "kaboom"},
        {"error": "NonRetriableError", "name": "Error", "message": "kaboom"},
    )


def test_transport_error_is_retried_then_fails_the_run() -> None:
    sdk_reply = reply(0, None, sdk=False, transport_error="ClientConnectorError: refused")
    first = handle(sdk_reply)
    assert_backoff(first.retry_at)
    assert first.run_update is None
    message = "could not reach the app: ClientConnectorError: refused"
    last = handle(sdk_reply, attempt=LAST_ATTEMPT)
    assert_run_failed(
        last,
        {"name": "Error", "message": message},
        {"error": message, "name": "Error", "message": message},
        LAST_ATTEMPT,
    )


def test_transport_error_ignores_no_retry_and_retry_after() -> None:
    sdk_reply = reply(
        0,
        None,
        headers={"X-Inngest-No-Retry": "true", "Retry-After": "5"},
        transport_error="TimeoutError",
    )
    assert_backoff(handle(sdk_reply).retry_at)


@pytest.mark.parametrize(("status", "body"), [(200, {"ok": 1}), (206, [])])
def test_2xx_without_sdk_header_is_an_error(status: int, body: Any) -> None:
    sdk_reply = reply(status, body, sdk=False)
    first = handle(sdk_reply)
    assert_backoff(first.retry_at)
    assert first.run_update is None and first.settled == []
    message = "the response did not come from an Inngest SDK (no X-Inngest-SDK header)"
    assert_run_failed(
        handle(sdk_reply, attempt=LAST_ATTEMPT),
        {"name": "Error", "message": message},
        {"error": message, "name": "Error", "message": message},
        LAST_ATTEMPT,
    )


@pytest.mark.parametrize(
    "body",
    [
        [{"op": "NoSuchOp", "id": "x"}],
        [{"op": 5, "id": "x"}],
        [{"op": "StepRun", "id": 12}],
        [{"op": "Sleep", "id": "x", "name": 5}],
        [{"op": "StepRun", "id": "x", "opts": "nope"}],
        ["not an op"],
        "a string",
        42,
    ],
)
def test_unparseable_206_is_an_error(body: Any) -> None:
    first = handle(body)
    assert_backoff(first.retry_at)
    assert first.settled == [] and first.new_jobs == []
    [entry] = first.history
    assert entry.kind is HistoryKind.ATTEMPT_FAILED
    assert entry.data["error"]["message"].startswith("unreadable response from the SDK: ")
    # The no-retry header does not make an unreadable reply final.
    assert handle(body, headers={"X-Inngest-No-Retry": "true"}).retry_at is not None
    last = handle(body, attempt=LAST_ATTEMPT)
    assert last.run_update is not None and last.run_update.status is RunStatus.FAILED


def test_request_version_is_set_from_the_first_reply_only() -> None:
    ops = [{"op": "DiscoveryRequest", "id": "d"}]
    fresh = run_state(request_version=-1)
    t = handle(ops, state=fresh, headers={"X-Inngest-Req-Version": "2"})
    assert t.run_update == RunUpdate(request_version=2)
    settled = run_state(request_version=1)
    assert handle(ops, state=settled, headers={"X-Inngest-Req-Version": "2"}).run_update is None
    assert handle(ops, state=fresh, headers={"X-Inngest-Req-Version": "two"}).run_update is None
    assert handle(ops, state=fresh).run_update is None
    # Also on a finishing reply, alongside the final status.
    done = handle({"x": 1}, status=200, state=fresh, headers={"X-Inngest-Req-Version": "1"})
    assert done.run_update is not None and done.run_update.request_version == 1


def test_finished_event_lists_every_event_of_a_batch() -> None:
    second = event("app/user.created", {"n": 2}, internal_id="01" + "A" * 24, event_id="e2")
    state = run_state(events=[event(), second])
    [finished] = finish_events(handle({"r": 1}, status=200, state=state))
    assert finished.data["event"] == event().to_wire()
    assert finished.data["events"] == [event().to_wire(), second.to_wire()]


def test_a_retried_attempt_records_the_sdk_error_body_as_sent() -> None:
    body = {"name": "", "message": None, "cause": {"x": 1}}
    t = handle(body, status=500)
    assert t.history[0].data["error"] == body


# ---- execute(): timers and terminal runs -------------------------------------------


async def test_wake_job_settles_the_sleep_with_null_and_goes_on() -> None:
    executor, _ = make_executor()
    before = int(time.time() * 1000)
    t = await executor.execute(
        job(kind=JobKind.WAKE, step_id="z1", payload={"name": "nap"}), run_state()
    )
    after = int(time.time() * 1000)
    assert t.continue_with is not None
    at = t.continue_with.run_at
    assert before <= at <= after
    assert t == base(
        settled=[Settled("z1", None, (HistoryEntry(HistoryKind.SLEEP_ENDED, at, "z1", "nap"),))],
        continue_with=NewJob(
            run_id=RUN_ID, kind=JobKind.CALL, run_at=at, key=f"discovery:{RUN_ID}:z1"
        ),
    )


@pytest.mark.parametrize(
    "status", [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED]
)
@pytest.mark.parametrize("kind", [JobKind.CALL, JobKind.WAKE])
async def test_job_of_a_terminal_run_is_just_deleted(status: RunStatus, kind: JobKind) -> None:
    executor, _ = make_executor()
    t = await executor.execute(job(kind=kind), run_state(status=status))
    assert t == base()


async def test_job_of_a_missing_run_is_just_deleted() -> None:
    executor, _ = make_executor()
    assert await executor.execute(job(), None) == base()


async def test_call_for_an_unknown_function_fails_the_run() -> None:
    executor, _ = make_executor()
    state = run_state(slug="app-gone")
    before = int(time.time() * 1000)
    t = await executor.execute(job(), state)
    assert t.run_update is not None
    assert t.run_update.status is RunStatus.FAILED
    message = "could not find function with ID: app-gone"
    assert t.run_update.output == {"name": "Error", "message": message}
    assert t.run_update.error == {"error": message, "name": "Error", "message": message}
    assert t.run_update.ended_at is not None and t.run_update.ended_at >= before
    assert t.clear_run_jobs
    assert [e.name for e in finish_events(t)] == [ev.FUNCTION_FINISHED, ev.FUNCTION_FAILED]


async def test_cron_job_emits_scheduled_timer_and_a_run() -> None:
    expr = "*/5 * * * *"
    record = function_record("app-cron", triggers=[{"cron": expr}])
    executor, _ = make_executor(record)
    five_min = 300_000
    scheduled = (int(time.time() * 1000) // five_min) * five_min
    cron_job = job(
        kind=JobKind.CRON,
        run_id=None,
        run_at=scheduled,
        payload={"function_slug": "app-cron", "cron": expr},
    )
    before = int(time.time() * 1000)
    t = await executor.execute(cron_job, None)
    after = int(time.time() * 1000)

    assert t.ingest is not None
    [timer] = t.ingest.events
    [run] = t.ingest.runs
    assert before <= timer.ts <= after
    scheduled_iso = datetime.fromtimestamp(scheduled / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fired = datetime.fromisoformat(timer.data["fireAt"].replace("Z", "+00:00"))
    assert fired.tzinfo is not None and timer.data["fireAt"].endswith("Z")
    assert abs(fired.timestamp() * 1000 - timer.ts) < 2
    assert timer == EventRecord(
        internal_id=timer.internal_id,
        id=scheduled_iso,
        name=ev.SCHEDULED_TIMER,
        data={"cron": expr, "scheduledAt": scheduled_iso, "fireAt": timer.data["fireAt"]},
        user={},
        ts=timer.ts,
        v=None,
        received_at=timer.ts,
    )
    assert run == NewRun(
        id=run.id,
        function_id="uuid-app-cron",
        function_slug="app-cron",
        event_ids=(timer.internal_id,),
        idempotency_key=scheduled_iso,
        created_at=timer.ts,
        cron=expr,
    )
    assert t == Transition(
        job_id=7,
        lease="lease-7",
        run_id=None,
        reschedule_at=(timer.ts // five_min + 1) * five_min,
        ingest=Ingest(events=[timer], runs=[run]),
    )
    assert t.reschedule_at == next_cron_ms(expr, timer.ts)


async def test_late_cron_job_reschedules_after_now_not_after_its_due_time() -> None:
    expr = "*/5 * * * *"
    record = function_record("app-cron", triggers=[{"cron": expr}])
    executor, _ = make_executor(record)
    long_ago = (int(time.time() * 1000) // 300_000 - 12) * 300_000  # an hour late
    t = await executor.execute(
        job(
            kind=JobKind.CRON,
            run_id=None,
            run_at=long_ago,
            payload={"function_slug": "app-cron", "cron": expr},
        ),
        None,
    )
    assert t.reschedule_at is not None and t.reschedule_at > time.time() * 1000 - 1000
    assert t.ingest is not None
    assert t.ingest.events[0].data["scheduledAt"] == t.ingest.events[0].id


@pytest.mark.parametrize(
    "payload",
    [
        {"function_slug": "app-gone", "cron": "*/5 * * * *"},
        {"function_slug": "app-cron", "cron": "0 * * * *"},  # trigger changed since
        None,
    ],
)
async def test_stale_cron_job_is_dropped(payload: dict[str, Any] | None) -> None:
    record = function_record("app-cron", triggers=[{"cron": "*/5 * * * *"}])
    executor, _ = make_executor(record)
    t = await executor.execute(
        job(kind=JobKind.CRON, run_id=None, run_at=NOW, payload=payload), None
    )
    assert t == Transition(job_id=7, lease="lease-7", run_id=None)


def test_max_sleep_is_366_days() -> None:
    assert timedelta(days=366) == MAX_SLEEP


# ---- finish events are not re-reported recursively --------------------------------


@pytest.mark.parametrize("trigger", [ev.FUNCTION_FINISHED, ev.FUNCTION_FAILED])
def test_a_run_started_by_a_finish_event_reports_no_finish_of_its_own(trigger: str) -> None:
    listener = function_record(
        "app-on-finished", triggers=[{"event": trigger}], fn_id="uuid-listener"
    )
    executor, _ = make_executor(function_record(), listener)
    state = run_state(events=[event(name=trigger, data={"function_id": "app-other"})])
    t = handle({"ok": True}, status=200, state=state, executor=executor)
    assert t.run_update is not None and t.run_update.status is RunStatus.COMPLETED
    # Otherwise the listener's own finish would start the listener again, forever.
    assert t.ingest is None
    failed = handle(
        {"name": "Error", "message": "x"},
        status=500,
        headers={"x-inngest-no-retry": "true"},
        state=state,
        executor=executor,
    )
    assert failed.run_update is not None and failed.run_update.status is RunStatus.FAILED
    assert failed.ingest is None


async def test_a_run_whose_state_passed_32_mb_fails_without_calling_the_app() -> None:
    # The driver is never called (it would raise): the limit is checked first.
    executor, _ = make_executor(function_record())
    big = dataclasses.replace(run_state(), state_bytes=MAX_RUN_STATE + 1)
    t = await executor.execute(job(), big)
    assert t.run_update is not None and t.run_update.status is RunStatus.FAILED
    assert t.run_update.error is not None
    assert t.run_update.error["name"] == "StateTooLargeError"
    assert t.clear_run_jobs


def test_state_over_4_mb_is_sent_by_reference() -> None:
    body = build_call_body(
        dataclasses.replace(run_state(), state_bytes=USE_API_BYTES + 1),
        step_id="step",
        attempt=0,
        max_attempts=5,
        force_step_plan=False,
        fn_id="uuid-app-fn",
        queue_item="1",
    )
    assert body["use_api"] is True and body["ctx"]["use_api"] is True
    assert body["events"] == [] and body["steps"] == {}
    assert body["event"]["name"] == "app/user.created"  # the trigger is always sent
