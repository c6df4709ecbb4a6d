"""``GET /metrics``: counters, the app-call histogram and the queue gauges, over HTTP."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.harness import Stack, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

FUNCTIONS = ("metrics-steps", "metrics-doomed", "metrics-sleeper", "metrics-waiter")


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("metrics"),
        "metrics_app",
        server_args=["--retry-interval", "0.2"],
        functions=len(FUNCTIONS),
    ) as s:
        yield s


def scrape(stack: Stack) -> Samples:
    response = stack.server.http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """``name``'s samples as {value of ``label``: sample value}."""
    return {dict(key)[label]: v for (n, key), v in samples.items() if n == name}


def seen_in_history(stack: Stack, run_id: str, kind: str) -> bool:
    return any(h["kind"] == kind for h in stack.server.history(run_id))


def test_counters_histogram_and_gauges_follow_the_runs(stack: Stack) -> None:
    server = stack.server
    assert server.wait_for_run(server.send("test/metrics.steps"))["status"] == "Completed"
    assert server.wait_for_run(server.send("test/metrics.doomed"))["status"] == "Failed"
    sleep_event, wait_event = server.send("test/metrics.sleep"), server.send("test/metrics.wait")
    sleeper = wait_until(lambda: server.runs(sleep_event), timeout=10, what="sleeper")[0]["run_id"]
    waiter = wait_until(lambda: server.runs(wait_event), timeout=10, what="waiter")[0]["run_id"]
    wait_until(lambda: seen_in_history(stack, sleeper, "SleepStarted"), timeout=20, what="nap")
    wait_until(lambda: seen_in_history(stack, waiter, "WaitStarted"), timeout=20, what="wait")
    # Finish events and the like may still be in the queue for a moment; it must drain.
    wait_until(
        lambda: value(scrape(stack), "stepwise_queue_due_jobs") == 0, timeout=20, what="drain"
    )

    samples = scrape(stack)
    assert by_label(samples, "stepwise_runs_started_total", "function") == dict.fromkeys(
        FUNCTIONS, 1.0
    )
    finished = {
        (dict(key)["function"], dict(key)["status"]): v
        for (n, key), v in samples.items()
        if n == "stepwise_runs_finished_total"
    }
    assert finished == {("metrics-steps", "completed"): 1.0, ("metrics-doomed", "failed"): 1.0}
    steps = {
        (dict(key)["function"], dict(key)["outcome"]): v
        for (n, key), v in samples.items()
        if n == "stepwise_steps_total"
    }
    assert steps == {
        ("metrics-steps", "succeeded"): 2.0,
        ("metrics-steps", "retried"): 1.0,
        ("metrics-doomed", "failed"): 1.0,
    }
    # One observation per call the app received, for each function.
    calls = Counter(e["function"] for e in stack.app.ledger_of("call"))
    assert calls["metrics-steps"] >= 3  # first step, the failed second, its retry
    assert by_label(samples, "stepwise_app_call_duration_seconds_count", "function") == {
        f: float(calls[f]) for f in FUNCTIONS
    }
    for function in FUNCTIONS:
        total = value(samples, "stepwise_app_call_duration_seconds_sum", function=function)
        assert total is not None and total > 0
        every = value(
            samples, "stepwise_app_call_duration_seconds_bucket", function=function, le="+Inf"
        )
        assert every == float(calls[function])
    # The sleeper's wake-up is due in an hour, the waiter's timeout too: nothing due now.
    assert value(samples, "stepwise_queue_due_jobs") == 0
    assert value(samples, "stepwise_queue_oldest_due_age_seconds") == 0
    assert by_label(samples, "stepwise_pauses", "kind") == {
        "wait": 1.0,  # the waiter
        "cancel": 1.0,  # the sleeper's cancel-on trigger
        "invoke": 0.0,
        "signal": 0.0,
    }

    # A step the app saves by checkpoint while its call is open (JS SDK 4) counts too.
    [(waiter_fn,)] = server.query("SELECT id FROM functions WHERE slug = ?", ("metrics-waiter",))
    checkpoint = {"fn_id": waiter_fn, "steps": [{"op": "StepRun", "id": "c0ffee", "data": 1}]}
    saved = server.http.post(f"/v1/checkpoint/{waiter}/async", content=json.dumps(checkpoint))
    assert saved.status_code == 200, saved.text
    samples = scrape(stack)
    assert (
        value(samples, "stepwise_steps_total", function="metrics-waiter", outcome="succeeded") == 1
    )

    # A cancel-on event (committed by a job) and the REST API each cancel one run.
    server.send("test/metrics.stop")
    assert server.wait_for_run_end(sleeper)["status"] == "Cancelled"
    assert server.http.delete(f"/v1/runs/{waiter}").status_code == 200
    assert server.run(waiter)["status"] == "Cancelled"

    samples = scrape(stack)
    assert (
        value(
            samples, "stepwise_runs_finished_total", function="metrics-sleeper", status="cancelled"
        )
        == 1.0
    )
    assert (
        value(
            samples, "stepwise_runs_finished_total", function="metrics-waiter", status="cancelled"
        )
        == 1.0
    )
    assert by_label(samples, "stepwise_pauses", "kind") == dict.fromkeys(
        ("wait", "cancel", "invoke", "signal"), 0.0
    )
    # Cancelling called no app: the histogram did not move.
    assert by_label(samples, "stepwise_app_call_duration_seconds_count", "function") == {
        f: float(calls[f]) for f in FUNCTIONS
    }


def test_metrics_are_the_text_format_with_help_and_type(stack: Stack) -> None:
    text = stack.server.http.get("/metrics").text
    assert "# TYPE stepwise_runs_started_total counter" in text
    assert "# TYPE stepwise_app_call_duration_seconds histogram" in text
    assert "# TYPE stepwise_queue_due_jobs gauge" in text
    assert "# HELP stepwise_pauses " in text
