"""What the metrics count from the engine's transitions, and that servers never share them."""

from __future__ import annotations

from prometheus_client import generate_latest
from server_support import NOW, job, make_executor, reply, run_state, spec

from stepwise.server.engine import lifecycle
from stepwise.server.engine.scheduler import Scheduler
from stepwise.server.metrics import Metrics
from stepwise.server.store.records import PauseKind, QueueStats, RunStatus


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_first_reply_that_completes_the_run_starts_and_completes_it() -> None:
    executor, _ = make_executor()
    state = run_state(status=RunStatus.SCHEDULED)
    transition = executor.handle_reply(job(), state, spec(), reply(200, "done"), NOW)
    metrics = Metrics()

    metrics.committed(transition, state, [])

    assert sample(metrics, "stepwise_runs_started_total", function="app-fn") == 1
    finished = {"function": "app-fn", "status": "completed"}
    assert sample(metrics, "stepwise_runs_finished_total", **finished) == 1


def test_a_failed_step_attempt_with_attempts_left_counts_as_retried() -> None:
    executor, _ = make_executor()
    state = run_state()
    error = {"op": "StepError", "id": "h1", "name": "charge", "error": {"message": "no"}}
    transition = executor.handle_reply(job(), state, spec(), reply(206, [error]), NOW)
    metrics = Metrics()

    metrics.committed(transition, state, [])

    assert sample(metrics, "stepwise_steps_total", function="app-fn", outcome="retried") == 1
    assert sample(metrics, "stepwise_runs_started_total", function="app-fn") is None


def test_a_cancellation_that_lost_its_race_is_not_counted() -> None:
    state = run_state()
    cancel = lifecycle.cancel_change(state, Scheduler(make_executor()[1]), NOW, "stop")
    metrics = Metrics()
    cancelled = {"function": "app-fn", "status": "cancelled"}

    metrics.changes_applied([cancel], [False])
    assert sample(metrics, "stepwise_runs_finished_total", **cancelled) is None
    metrics.changes_applied([cancel], [True])
    assert sample(metrics, "stepwise_runs_finished_total", **cancelled) == 1


def test_two_servers_in_one_process_keep_their_own_counts() -> None:
    first, second = Metrics(), Metrics()
    first.observe_call("app-fn", 0.2)

    assert sample(first, "stepwise_app_call_duration_seconds_count", function="app-fn") == 1
    assert sample(second, "stepwise_app_call_duration_seconds_count", function="app-fn") is None
    assert b"app-fn" not in generate_latest(second.registry)


def test_the_oldest_due_age_is_in_seconds_and_zero_when_nothing_is_due() -> None:
    metrics = Metrics()
    pauses = dict.fromkeys(PauseKind, 0)
    stats = QueueStats(due_jobs=3, oldest_due_at=NOW - 2_500, waiting_jobs=4, pauses=pauses)
    metrics.exposition(stats, NOW)
    assert sample(metrics, "stepwise_queue_due_jobs") == 3
    assert sample(metrics, "stepwise_queue_oldest_due_age_seconds") == 2.5
    assert sample(metrics, "stepwise_queue_waiting_jobs") == 4

    stats = QueueStats(due_jobs=0, oldest_due_at=None, waiting_jobs=0, pauses=pauses)
    metrics.exposition(stats, NOW)
    assert sample(metrics, "stepwise_queue_oldest_due_age_seconds") == 0
