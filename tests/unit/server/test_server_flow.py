"""Flow control decided at run creation: GCRA, idempotency keys, singleton keys, priority."""

from __future__ import annotations

from typing import Any

import pytest
from server_support import NOW, event, function_record, registry_of

from stepwise.server.engine.scheduler import MAX_PRIORITY_S, Scheduler
from stepwise.server.flow import gcra


def test_gcra_admits_limit_events_per_period_and_no_more() -> None:
    tat = None
    allowed = 0
    for _ in range(10):  # a burst at one instant
        new = gcra.allow(tat, 0, limit=3, period=60_000)
        if new is not None:
            tat, allowed = new, allowed + 1
    assert allowed == 3


def test_gcra_recovers_at_the_steady_rate() -> None:
    tat = None
    for _ in range(3):
        tat = gcra.allow(tat, 0, limit=3, period=60_000)
    assert gcra.allow(tat, 19_000, 3, 60_000) is None  # one slot frees every 20 s
    assert gcra.allow(tat, 20_000, 3, 60_000) is not None


def test_gcra_bounds_over_any_stretch_of_time() -> None:
    """GCRA's guarantees: a burst of at most ``limit``, then the steady rate.

    Over any stretch of time ``W`` at most ``limit + W / interval`` events pass (so one
    period-long window can hold a full burst plus a period's refill: 2 * limit - 1), and
    over a long run the rate is ``limit / period``.
    """
    limit, period = 5, 10_000
    interval = period / limit
    tat = None
    accepted = []
    for t in range(0, 300_000, 700):  # an event every 0.7 s for 5 minutes
        new = gcra.allow(tat, t, limit=limit, period=period)
        if new is not None:
            tat = new
            accepted.append(t)
    for start in accepted:
        assert sum(1 for t in accepted if start <= t < start + period) <= 2 * limit - 1
        for width in (1_000, 5_000, 30_000):
            in_window = sum(1 for t in accepted if start <= t < start + width)
            assert in_window <= limit + width / interval
    assert len(accepted) <= limit + 300_000 / interval


def run_for(config: dict[str, Any], data: dict[str, Any]) -> Any:
    record = function_record("app-flow", extra=config)
    [run] = Scheduler(registry_of(record)).plan([event(data=data)], NOW).runs
    return run


def test_idempotency_expression_keys_the_run() -> None:
    a = run_for({"idempotency": "event.data.user_id"}, {"user_id": 7})
    b = run_for({"idempotency": "event.data.user_id"}, {"user_id": 7.0})
    assert a.idempotency_key == b.idempotency_key  # 7 and 7.0 are the same key
    assert (
        a.idempotency_key
        != run_for({"idempotency": "event.data.user_id"}, {"user_id": 8}).idempotency_key
    )


def test_rate_limit_key_and_false_opt_out() -> None:
    limited = run_for(
        {"rateLimit": {"limit": 2, "period": "1m", "key": "event.data.tenant"}}, {"tenant": "a"}
    )
    assert limited.rate_limit is not None
    assert limited.rate_limit.limit == 2 and limited.rate_limit.period_ms == 60_000
    assert limited.rate_limit.key.endswith(':"a"')
    opted_out = run_for(
        {"rateLimit": {"limit": 2, "period": "1m", "key": "event.data.tenant == 'x'"}},
        {"tenant": "a"},
    )
    assert opted_out.rate_limit is None


def test_singleton_skip_mode_keys_the_run() -> None:
    run = run_for({"singleton": {"key": "event.data.user_id", "mode": "skip"}}, {"user_id": 1})
    assert run.singleton_key == "1"
    assert run_for({"singleton": {"mode": "skip"}}, {}).singleton_key == ""


@pytest.mark.parametrize(
    ("factor", "shift_s"),
    [(100, 100), (-50, -50), (10**9, MAX_PRIORITY_S), (-(10**9), -MAX_PRIORITY_S)],
)
def test_priority_shifts_the_start_and_is_clamped(factor: int, shift_s: int) -> None:
    run = run_for({"priority": {"run": "event.data.p"}}, {"p": factor})
    assert run.start_at == NOW - shift_s * 1000


def test_no_flow_control_by_default() -> None:
    run = run_for({}, {})
    assert run.rate_limit is None and run.singleton_key is None and run.start_at is None


def test_cron_jitter_spreads_the_start_of_each_tick() -> None:
    from server_support import job, make_executor

    from stepwise.server.store.records import JobKind

    record = function_record("app-cron", triggers=[{"cron": "*/5 * * * *", "jitter": "30s"}])
    executor, _ = make_executor(record)
    tick = job(kind=JobKind.CRON, payload={"function_slug": "app-cron", "cron": "*/5 * * * *"})
    starts = set()
    for _ in range(20):
        t = executor.jobs.cron_tick(tick, NOW)
        assert t.ingest is not None
        [run] = t.ingest.runs
        assert run.start_at is not None and NOW <= run.start_at < NOW + 30_000
        starts.add(run.start_at)
    assert len(starts) > 1  # spread, not fixed


def test_batch_if_lets_failing_events_run_on_their_own() -> None:
    config = {"batchEvents": {"maxSize": 5, "timeout": "2s", "if": "event.data.vip == false"}}
    assert run_for(config, {"vip": False}).batch is not None
    unbatched = run_for(config, {"vip": True})
    assert unbatched.batch is None  # started at once, alone


def test_env_scope_concurrency_is_shared_across_functions_fn_scope_is_not() -> None:
    limit = {"limit": 2, "key": "event.data.tenant"}
    env = [{**limit, "scope": "env"}]
    a = Scheduler(registry_of(function_record("app-a", fn_id="uuid-a", extra={"concurrency": env})))
    b = Scheduler(registry_of(function_record("app-b", fn_id="uuid-b", extra={"concurrency": env})))
    [run_a] = a.plan([event(data={"tenant": "t"})], NOW).runs
    [run_b] = b.plan([event(data={"tenant": "t"})], NOW).runs
    assert run_a.concurrency == run_b.concurrency  # one key: both functions share the limit
    fa = Scheduler(
        registry_of(function_record("app-a", fn_id="uuid-a", extra={"concurrency": [limit]}))
    )
    fb = Scheduler(
        registry_of(function_record("app-b", fn_id="uuid-b", extra={"concurrency": [limit]}))
    )
    [fn_a] = fa.plan([event(data={"tenant": "t"})], NOW).runs
    [fn_b] = fb.plan([event(data={"tenant": "t"})], NOW).runs
    assert fn_a.concurrency != fn_b.concurrency  # function scope: each its own


def test_throttle_keys_are_per_evaluated_key() -> None:
    config = {"throttle": {"limit": 3, "period": "10s", "burst": 2, "key": "event.data.user"}}
    a, b = run_for(config, {"user": "a"}), run_for(config, {"user": "b"})
    assert a.throttle is not None and b.throttle is not None
    assert a.throttle.key != b.throttle.key
    assert (a.throttle.limit, a.throttle.period_ms, a.throttle.burst) == (3, 10_000, 2)
