"""Durable endpoints, the decisions: the request that started a run checked, a run's start
planned, and a checkpoint as the answer of a call that has no job (reference §2.3-§2.5)."""

from __future__ import annotations

from typing import Any

import pytest
from server_support import NOW, make_executor

from stepwise.errors import ApiError
from stepwise.protocol import RUN_COMPLETE_ID, GeneratorOp, hash_step_id
from stepwise.server.api.endpoints import response_of
from stepwise.server.api.realtime import FrameSplitter
from stepwise.server.engine import endpoints
from stepwise.server.store.records import NO_JOB, HistoryKind, JobKind, RunStatus

RUN = "01J0000000000000000000RUN1"


def request_data(**fields: Any) -> dict[str, Any]:
    return {
        "content_type": "application/json",
        "domain": "http://127.0.0.1:3000",
        "ip": "",
        "method": "POST",
        "path": "/api/orders",
        "query_params": "a=1&b=2",
        "body": '{"n": 1}',
        "fn": "",
        **fields,
    }


def ops(*wire: dict[str, Any]) -> list[GeneratorOp]:
    return [GeneratorOp.from_wire(op) for op in wire]


def step_run(name: str, data: Any) -> dict[str, Any]:
    return {"id": hash_step_id(name), "op": "StepRun", "name": name, "data": data}


def start(*wire: dict[str, Any], retries: int = 3, **data: Any) -> Any:
    executor, _ = make_executor()
    return endpoints.plan_start(
        executor,
        run_id=RUN,
        event={"name": endpoints.HTTP_REQUEST, "data": request_data(**data)},
        ops=ops(*wire),
        retries=retries,
        request_version=2,
        now=NOW,
        body_bytes=1000,
        signal_owners={},
        sdk="inngest-js:v4.24.0",
    )


def test_the_request_names_the_app_function_and_reentry_url() -> None:
    request = endpoints.HttpRequest.parse(request_data())
    assert request.app_name == "127.0.0.1:3000"
    assert request.function_name == "POST /api/orders"
    assert request.slug == "127.0.0.1:3000-post-api-orders"
    assert request.url == "http://127.0.0.1:3000/api/orders?a=1&b=2"
    named = endpoints.HttpRequest.parse(request_data(fn="my fn/1", query_params=""))
    assert (named.slug, named.function_name) == ("127.0.0.1:3000-my-fn-1", "my fn/1")
    assert named.url == "http://127.0.0.1:3000/api/orders"


@pytest.mark.parametrize(
    "fields",
    [
        {"domain": "ftp://h"},
        {"domain": "http://h/path"},
        {"domain": "nothing"},
        {"path": "relative"},
        {"path": "/a?b"},
        {"method": "GE T"},
        {"method": 5},
        {"query_params": "a=1#frag"},
        {"content_type": "text/plain\r\nx-evil: 1"},
        {"body": {"not": "text"}},
    ],
)
def test_a_request_that_cannot_be_reentered_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as refused:
        endpoints.HttpRequest.parse(request_data(**fields))
    assert (refused.value.status, refused.value.code) == (400, "invalid_endpoint")


def test_a_start_plans_a_running_run_its_function_and_its_first_step() -> None:
    planned = start(step_run("a", "hello"))
    assert planned.run.started_at == NOW and planned.run.id == RUN
    assert planned.app.name == "127.0.0.1:3000" and planned.app.framework == endpoints.FRAMEWORK
    assert planned.app.sdk == "inngest-js:v4.24.0"
    config = planned.function.config
    assert config["driver"] == {"type": "sync", "method": "POST"}
    assert config["steps"]["step"]["retries"] == {"attempts": 3}
    assert planned.endpoint.url == "http://127.0.0.1:3000/api/orders?a=1&b=2"
    assert planned.endpoint.stream_token.startswith(f"{RUN}.")
    assert len(planned.endpoint.token) >= 40
    first = planned.first
    assert first.job_id == NO_JOB
    assert [s.step_id for s in first.settled] == [hash_step_id("a")]
    # The handler goes on in its request: nothing is queued.
    assert first.continue_with is None and first.new_jobs == [] and first.planned == []
    assert first.run_update is not None and first.run_update.request_version == 2


def test_a_start_with_another_event_or_too_many_retries_is_refused() -> None:
    executor, _ = make_executor()
    with pytest.raises(ApiError):
        endpoints.plan_start(
            executor,
            run_id=RUN,
            event={"name": "app/other", "data": request_data()},
            ops=[],
            retries=3,
            request_version=2,
            now=NOW,
            body_bytes=0,
            signal_owners={},
        )
    with pytest.raises(ApiError):
        start(retries=21)


def test_a_sleep_goes_async_with_its_wake_up() -> None:
    sleep = {"id": hash_step_id("nap"), "op": "Sleep", "name": "1s"}
    first = start(step_run("a", 1), sleep).first
    [planned] = first.planned
    assert planned.step_id == hash_step_id("nap")
    [wake] = planned.jobs
    assert (wake.kind, wake.run_at) == (JobKind.WAKE, NOW + 1000)


def test_a_step_error_queues_the_runs_attempt_1_and_a_final_one_fails_the_step() -> None:
    error = {"name": "Error", "message": "boom"}
    first = start({"id": hash_step_id("a"), "op": "StepError", "name": "a", "error": error}).first
    assert first.retry_at is None
    [retry] = first.new_jobs
    assert (retry.kind, retry.attempt, retry.step_id) == (JobKind.CALL, 1, "step")
    assert retry.run_at > NOW
    assert [h.kind for h in first.history] == [HistoryKind.STEP_ERRORED]

    failed = {"id": hash_step_id("a"), "op": "StepFailed", "name": "a", "error": error}
    first = start(failed).first
    [settled] = first.settled
    assert settled.memo == {"error": error}
    assert first.continue_with is not None  # a discovery re-entry: the handler sees the error

    # With no retries, a retriable error is the last attempt too.
    first = start({"id": hash_step_id("a"), "op": "StepError", "error": error}, retries=0).first
    assert first.new_jobs == [] and first.settled[0].memo == {"error": error}


def test_the_handlers_own_errors_retry_or_fail_the_run() -> None:
    error = {"name": "Error", "message": "handler"}
    first = start({"id": RUN_COMPLETE_ID, "op": "StepError", "error": error}).first
    [retry] = first.new_jobs
    assert retry.attempt == 1
    first = start({"id": RUN_COMPLETE_ID, "op": "StepFailed", "error": error}).first
    assert first.run_update is not None and first.run_update.status is RunStatus.FAILED
    assert first.clear_run_jobs


def test_run_complete_ends_the_run_with_the_handlers_response() -> None:
    result = {"status": 202, "headers": {"x-a": "1"}, "body": '"hi"', "version": 2}
    first = start(
        step_run("a", 1), {"id": RUN_COMPLETE_ID, "op": "RunComplete", "data": result}
    ).first
    assert first.run_update is not None
    assert (first.run_update.status, first.run_update.output) == (RunStatus.COMPLETED, result)
    assert first.ending is not None and first.ending.kind is HistoryKind.RUN_COMPLETED
    assert first.ingest is not None  # inngest/function.finished
    assert [e.name for e in first.ingest.events] == ["inngest/function.finished"]


def test_defers_ride_on_a_checkpoint_and_add_no_call() -> None:
    add = {
        "id": hash_step_id("later"),
        "op": "DeferAdd",
        "name": "later",
        "opts": {"fn_slug": "app-later", "input": {"n": 1}},
        "userland": {"id": "later"},
    }
    first = start(add).first
    assert [d.record.fn_slug for d in first.defers] == ["app-later"]
    assert first.new_jobs == [] and first.continue_with is None


def test_a_stream_is_cut_after_its_last_whole_frame() -> None:
    splitter = FrameSplitter()
    assert splitter.feed(b"event: a\ndata: 1\n") == b""
    assert splitter.feed(b"\nevent: b\nda") == b"event: a\ndata: 1\n\n"
    assert splitter.feed(b"ta: 2\n\nevent: c\n\n") == b"event: b\ndata: 2\n\nevent: c\n\n"
    assert splitter.feed(b"tail") == b""
    assert splitter.rest() == b"tail"
    assert splitter.rest() == b""


def test_the_output_answers_as_the_handler_did_else_as_json() -> None:
    answer = response_of(
        {
            "status": 201,
            "headers": {"x-a": "1", "content-length": "999", "content-type": "text/plain"},
            "body": "made",
            "version": 2,
        }
    )
    assert (answer.status_code, answer.body) == (201, b"made")
    assert answer.headers["x-a"] == "1" and answer.headers["content-length"] == "4"
    assert response_of(["not", "a", "response"]).body == b'["not","a","response"]'
    assert response_of({"status": 999, "headers": {}, "body": "x"}).status_code == 200
