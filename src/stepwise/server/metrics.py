"""What ``GET /metrics`` exposes, in the Prometheus text format.

Counters and the call-latency histogram count what *this node* did: each node counts the
transitions it committed, so a cluster's totals are the sum over its nodes (Prometheus'
``sum()``). The queue gauges are read from the store at scrape time and are the same on
every node sharing a database.

Each server has its own registry (not prometheus_client's process-wide default), so two
servers in one process, or one test after another, never share a counter.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .store.records import (
    HistoryKind,
    QueueStats,
    RunChange,
    RunState,
    RunStatus,
    Settled,
    Transition,
)

# From a fast step to the default call timeout: a call slower than the last bucket is
# still counted, in +Inf.
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

_STEP_OUTCOMES = {
    HistoryKind.STEP_COMPLETED: "succeeded",
    HistoryKind.STEP_FAILED: "failed",
    HistoryKind.STEP_ERRORED: "retried",
}

_ENDINGS = {
    RunStatus.COMPLETED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
}


class Metrics:
    """One server's metrics; the engine feeds it, ``GET /metrics`` renders it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs_started = Counter(
            "stepwise_runs_started",
            "Runs whose app answered their first call, committed by this node.",
            ["function"],
            registry=r,
        )
        self.runs_finished = Counter(
            "stepwise_runs_finished",
            "Runs that ended (completed, failed, cancelled), committed by this node.",
            ["function", "status"],
            registry=r,
        )
        self.steps = Counter(
            "stepwise_steps",
            "Step attempts whose outcome this node committed: succeeded, failed (no attempts"
            " left) or retried (failed, another attempt scheduled).",
            ["function", "outcome"],
            registry=r,
        )
        self.call_seconds = Histogram(
            "stepwise_app_call_duration_seconds",
            "Time from sending a call request to an app to reading its whole reply,"
            " failed calls (timeouts, refused connections) included.",
            ["function"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.due_jobs = Gauge(
            "stepwise_queue_due_jobs",
            "Jobs due now that no worker holds (waiting for a worker), on every node sharing"
            " the database.",
            registry=r,
        )
        self.waiting_jobs = Gauge(
            "stepwise_queue_waiting_jobs",
            "Jobs waiting for a concurrency slot or a throttle turn, on every node sharing the"
            " database.",
            registry=r,
        )
        self.oldest_due_age = Gauge(
            "stepwise_queue_oldest_due_age_seconds",
            "How long the longest-waiting due job has been due (0 when none is due).",
            registry=r,
        )
        self.pauses = Gauge(
            "stepwise_pauses",
            "Pauses stored, by kind: wait (wait for event), invoke, signal, cancel (cancel-on"
            " triggers of active runs).",
            ["kind"],
            registry=r,
        )

    def observe_call(self, function_slug: str, seconds: float) -> None:
        self.call_seconds.labels(function_slug).observe(seconds)

    def committed(
        self, transition: Transition, state: RunState | None, applied: list[bool]
    ) -> None:
        """Count what a committed transition did; ``state`` is its run as leased (None for a
        job of no run), ``applied`` which of its guarded run changes took effect."""
        if state is not None:
            slug = state.run.function_slug
            for entry in transition.history:
                if entry.kind is HistoryKind.RUN_STARTED:
                    self.runs_started.labels(slug).inc()
                elif entry.kind in _STEP_OUTCOMES:
                    self.steps.labels(slug, _STEP_OUTCOMES[entry.kind]).inc()
            self.steps_saved(slug, transition.settled)
            update = transition.run_update
            if update is not None and update.status in _ENDINGS:
                self.runs_finished.labels(slug, _ENDINGS[update.status]).inc()
        self.changes_applied(transition.run_changes, applied)

    def steps_saved(self, function_slug: str, settled: list[Settled]) -> None:
        """Count the outcomes of steps whose results were saved (by a call's reply or by a
        checkpoint sent during the call)."""
        for step in settled:
            for entry in step.history:
                if entry.kind in _STEP_OUTCOMES:
                    self.steps.labels(function_slug, _STEP_OUTCOMES[entry.kind]).inc()

    def changes_applied(self, changes: list[RunChange], applied: list[bool]) -> None:
        for change, took in zip(changes, applied, strict=True):
            update = change.run_update
            if took and change.function_slug and update is not None and update.status in _ENDINGS:
                self.runs_finished.labels(change.function_slug, _ENDINGS[update.status]).inc()

    def exposition(self, stats: QueueStats, now: int) -> bytes:
        """The text format, with the gauges set from ``stats`` read at ``now`` (ms)."""
        self.due_jobs.set(stats.due_jobs)
        self.waiting_jobs.set(stats.waiting_jobs)
        age = 0.0 if stats.oldest_due_at is None else max(now - stats.oldest_due_at, 0) / 1000
        self.oldest_due_age.set(age)
        for kind, count in stats.pauses.items():
            self.pauses.labels(kind.value).set(count)
        # No await between setting the gauges and rendering: a concurrent scrape cannot
        # interleave its own values.
        return generate_latest(self.registry)
