"""The engine's small pure parts: backoff, cron ticks, the registry, the scheduler, call bodies."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from server_support import (
    NOW,
    RUN_ID,
    event,
    function_record,
    registry_of,
    run_state,
)

from stepwise.server.engine import backoff
from stepwise.server.engine.backoff import clamp_retry_after, retry_delay_ms
from stepwise.server.engine.driver import build_call_body, target_url
from stepwise.server.engine.executor import next_cron_ms
from stepwise.server.engine.registry import retries_of, spec_from_record
from stepwise.server.engine.scheduler import Scheduler
from stepwise.server.store.records import NewRun, RunState, StepMemo

TABLE_S = [15, 30, 60, 120, 300, 600, 1200, 2400, 3600, 7200]


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


# ---- backoff ------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(14))
def test_retry_delay_follows_the_table_plus_jitter(attempt: int) -> None:
    base_ms = TABLE_S[min(attempt, len(TABLE_S) - 1)] * 1000
    for _ in range(50):
        delay = retry_delay_ms(attempt)
        assert base_ms <= delay <= base_ms + 30_000


@pytest.mark.parametrize(("jitter", "extra_ms"), [(0.0, 0), (30.0, 30_000), (12.5, 12_500)])
def test_retry_delay_jitter_bounds(
    monkeypatch: pytest.MonkeyPatch, jitter: float, extra_ms: int
) -> None:
    seen: list[tuple[float, float]] = []

    def uniform(a: float, b: float) -> float:
        seen.append((a, b))
        return jitter

    monkeypatch.setattr(backoff.random, "uniform", uniform)
    assert [retry_delay_ms(n) for n in range(11)] == [s * 1000 + extra_ms for s in [*TABLE_S, 7200]]
    assert set(seen) == {(0, 30)}


def test_retry_delay_jitter_actually_varies() -> None:
    random.seed(1)
    assert len({retry_delay_ms(0) for _ in range(20)}) > 1


@pytest.mark.parametrize(("interval", "expected"), [(3, 3_000), (0.25, 250), (0, 0), (60, 60_000)])
def test_fixed_retry_interval(interval: float, expected: int) -> None:
    assert retry_delay_ms(0, interval) == expected
    assert retry_delay_ms(9, interval) == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (NOW + 5_000, NOW + 5_000),
        (NOW + 1_000, NOW + 1_000),
        (NOW + 999, NOW + 1_000),
        (NOW, NOW + 1_000),
        (NOW - 86_400_000, NOW + 1_000),
        (NOW + 86_400_000, NOW + 86_400_000),
        (NOW + 86_400_001, NOW + 86_400_000),
        (NOW + 10 * 86_400_000, NOW + 86_400_000),
    ],
)
def test_clamp_retry_after(at: int, expected: int) -> None:
    assert clamp_retry_after(NOW, at) == expected


# ---- cron -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (ms(2024, 1, 1, 0, 2, 30), ms(2024, 1, 1, 0, 5)),
        (ms(2024, 1, 1, 0, 5), ms(2024, 1, 1, 0, 10)),  # strictly after
        (ms(2024, 1, 1, 0, 5) + 1, ms(2024, 1, 1, 0, 10)),
        (ms(2024, 12, 31, 23, 59), ms(2025, 1, 1, 0, 0)),
    ],
)
def test_next_cron_every_five_minutes(after: int, expected: int) -> None:
    assert next_cron_ms("*/5 * * * *", after) == expected


@pytest.mark.parametrize("prefix", ["TZ=Europe/Paris ", "CRON_TZ=Europe/Paris "])
@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # Winter (CET, UTC+1): 09:00 Paris is 08:00 UTC.
        (ms(2024, 1, 15), ms(2024, 1, 15, 8)),
        # Summer (CEST, UTC+2): 07:00 UTC.
        (ms(2024, 7, 15), ms(2024, 7, 15, 7)),
        # Saturday 10:00 Paris (CET); clocks go forward on Sunday 2024-03-31 at 01:00 UTC.
        (ms(2024, 3, 30, 9), ms(2024, 3, 31, 7)),
        # Saturday 10:00 Paris (CEST); clocks go back on Sunday 2024-10-27 at 01:00 UTC.
        (ms(2024, 10, 26, 8), ms(2024, 10, 27, 8)),
    ],
)
def test_next_cron_with_a_time_zone(prefix: str, after: int, expected: int) -> None:
    assert next_cron_ms(prefix + "0 9 * * *", after) == expected


def test_next_cron_without_zone_is_utc() -> None:
    assert next_cron_ms("0 9 * * *", ms(2024, 3, 30, 9)) == ms(2024, 3, 31, 9)
    assert next_cron_ms("  0 9 * * *  ", ms(2024, 3, 30, 9)) == ms(2024, 3, 31, 9)


# ---- registry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, 4),
        ({"retries": 2}, 2),
        ({"retries": 0}, 0),
        ({"retries": -3}, 0),
        ({"retries": 50}, 20),
        ({"retries": 20}, 20),
        ({"retries": True}, 4),
        ({"retries": False}, 4),
        ({"retries": "3"}, 4),
        ({"retries": 2.0}, 4),
        ({"steps": {"step": {"retries": {"attempts": 7}}}}, 7),
        ({"retries": 2, "steps": {"step": {"retries": {"attempts": 7}}}}, 7),
        ({"retries": 2, "steps": {"step": {"retries": {"attempts": 0}}}}, 0),
        ({"retries": 2, "steps": {"step": {"retries": {}}}}, 2),
        ({"retries": 2, "steps": {"step": {}}}, 2),
        ({"steps": {"step": {"retries": {"attempts": 99}}}}, 20),
        ({"steps": {"step": {"retries": {"attempts": True}}}}, 4),
        ({"steps": {"step": {"retries": None}}}, 4),
        ({"steps": None}, 4),
        # A malformed step-level "retries" is ignored, like a malformed count.
        ({"retries": 2, "steps": {"step": {"retries": "abc"}}}, 2),
        ({"steps": {"step": {"retries": [1, 2]}}}, 4),
        ({"steps": {"step": {"retries": 3}}}, 4),
    ],
)
def test_retries_of(config: dict[str, Any], expected: int) -> None:
    assert retries_of(config) == expected


def test_max_attempts_is_retries_plus_one() -> None:
    assert spec_from_record(function_record(retries=2)).max_attempts == 3
    assert spec_from_record(function_record(retries=None)).max_attempts == 5


def test_spec_splits_event_and_cron_triggers() -> None:
    record = function_record(
        triggers=[
            {"event": "app/a", "expression": "event.data.x == 1"},
            {"event": "app/b", "expression": ""},
            {"cron": "TZ=UTC 0 * * * *", "jitter": "5m"},
            {"cron": "*/5 * * * *"},
            {"event": "", "cron": ""},
        ]
    )
    spec = spec_from_record(record)
    assert [(t.event, t.expression) for t in spec.event_triggers] == [
        ("app/a", "event.data.x == 1"),
        ("app/b", None),
    ]
    assert [(t.cron, t.jitter) for t in spec.cron_triggers] == [
        ("TZ=UTC 0 * * * *", "5m"),
        ("*/5 * * * *", None),
    ]
    assert spec.slug == "app-fn" and spec.id == "uuid-app-fn" and spec.url == record.url


def test_triggered_by_exact_and_wildcard_patterns() -> None:
    exact = function_record("app-exact", triggers=[{"event": "app/user.created"}])
    wild = function_record("app-wild", triggers=[{"event": "app/*"}])
    other = function_record("app-other", triggers=[{"event": "other/*"}])
    registry = registry_of(exact, wild, other)

    def slugs(name: str) -> list[str]:
        return [spec.slug for spec, _ in registry.triggered_by(name)]

    assert slugs("app/user.created") == ["app-exact", "app-wild"]
    assert slugs("app/x") == ["app-wild"]
    assert slugs("app/a/b") == ["app-wild"]
    assert slugs("app/") == ["app-wild"]
    assert slugs("app") == []
    assert slugs("APP/x") == []  # case-sensitive
    assert slugs("other/x") == ["app-other"]
    assert slugs("xapp/x") == []
    assert registry.get("app-wild") is not None and registry.get("nope") is None
    assert {s.slug for s in registry.all()} == {"app-exact", "app-wild", "app-other"}


def test_replace_all_drops_old_functions() -> None:
    registry = registry_of(function_record("app-old", triggers=[{"event": "app/*"}]))
    registry.replace_all([function_record("app-new", triggers=[{"event": "b/c"}])])
    assert registry.triggered_by("app/x") == []
    assert [s.slug for s, _ in registry.triggered_by("b/c")] == ["app-new"]


# ---- scheduler --------------------------------------------------------------------


def test_plan_starts_one_run_per_event_and_function() -> None:
    both = function_record("app-both", triggers=[{"event": "app/user.created"}, {"event": "app/*"}])
    single = function_record("app-single", triggers=[{"event": "app/user.created"}])
    registry = registry_of(both, single)
    first = event()
    second = event("app/other", internal_id="01" + "B" * 24, event_id="user-evt-2")
    ingest = Scheduler(registry).plan([first, second], NOW)

    assert ingest.events == [first, second]
    expected = [
        ("app-both", first),
        ("app-single", first),
        ("app-both", second),
    ]
    assert len(ingest.runs) == len(expected)
    for run, (slug, ev) in zip(ingest.runs, expected, strict=True):
        assert run == NewRun(
            id=run.id,
            function_id=f"uuid-{slug}",
            function_slug=slug,
            event_ids=(ev.internal_id,),
            idempotency_key=ev.id,
            created_at=NOW,
            cron=None,
        )
    assert len({r.id for r in ingest.runs}) == 3


def test_plan_with_trigger_expressions() -> None:
    record = function_record(
        "app-big", triggers=[{"event": "app/order", "expression": "event.data.amount > 10"}]
    )
    scheduler = Scheduler(registry_of(record))
    big = event("app/order", {"amount": 20})
    small = event("app/order", {"amount": 5})
    missing = event("app/order", {})
    assert [r.function_slug for r in scheduler.plan([big], NOW).runs] == ["app-big"]
    assert scheduler.plan([small], NOW).runs == []
    # An expression that errors on this event does not match (and does not raise).
    assert scheduler.plan([missing], NOW).runs == []


def test_plan_expression_false_on_one_trigger_true_on_another() -> None:
    record = function_record(
        "app-fn",
        triggers=[
            {"event": "app/order", "expression": "event.data.amount > 100"},
            {"event": "app/*", "expression": "event.data.amount < 100"},
        ],
    )
    scheduler = Scheduler(registry_of(record))
    runs = scheduler.plan([event("app/order", {"amount": 5})], NOW).runs
    assert [r.function_slug for r in runs] == ["app-fn"]


def test_plan_idempotency_key_is_the_event_id() -> None:
    scheduler = Scheduler(registry_of(function_record()))
    [run] = scheduler.plan([event(event_id="order-123")], NOW).runs
    assert run.idempotency_key == "order-123"
    [run] = scheduler.plan([event(event_id=event().internal_id)], NOW).runs
    assert run.idempotency_key == event().internal_id


def test_plan_without_matching_functions_still_stores_the_events() -> None:
    ingest = Scheduler(registry_of()).plan([event("nobody/listens")], NOW)
    assert ingest.events == [event("nobody/listens")] and ingest.runs == []


# ---- driver: URL and call body ----------------------------------------------------


@pytest.mark.parametrize(
    ("base", "step_id", "expected"),
    [
        ("http://app/api", "step", "http://app/api?stepId=step"),
        (
            "http://app/api?fnId=app-fn&stepId=old",
            "s1",
            "http://app/api?fnId=app-fn&stepId=s1",
        ),
        (
            "http://app/api?stepId=old&fnId=app-fn",
            "s1",
            "http://app/api?fnId=app-fn&stepId=s1",
        ),
        ("https://app:8443/x?fnId=a%2Fb", "step", "https://app:8443/x?fnId=a%2Fb&stepId=step"),
        ("http://app/api?fnId=f&empty=", "step", "http://app/api?fnId=f&empty=&stepId=step"),
    ],
)
def test_target_url(base: str, step_id: str, expected: str) -> None:
    assert target_url(base, step_id) == expected


def call_body(state: RunState, **fields: Any) -> dict[str, Any]:
    """``build_call_body`` for a first discovery call, with ``fields`` different."""
    defaults: dict[str, Any] = {
        "step_id": "step",
        "attempt": 0,
        "max_attempts": 1,
        "force_step_plan": False,
        "fn_id": "uuid-app-fn",
        "queue_item": "1",
    }
    return build_call_body(state, **{**defaults, **fields})


def test_build_call_body_shape() -> None:
    first = event(data={"a": 1}, ts=NOW - 10, v="2024-01-01.1")
    second = event("app/other", {"b": 2}, internal_id="01" + "C" * 24, event_id="e2")
    steps = [
        StepMemo("hash-b", 0, {"data": "B"}),
        StepMemo("hash-a", 1, {"error": {"name": "Error", "message": "x"}}),
        StepMemo("hash-z", 2, None),
    ]
    state = run_state(events=[first, second], steps=steps, request_version=1)
    body = call_body(
        state, step_id="hash-q", attempt=2, max_attempts=5, force_step_plan=True, queue_item="77"
    )
    assert body == {
        "event": {
            "name": "app/user.created",
            "data": {"a": 1},
            "id": "user-evt-1",
            "ts": NOW - 10,
            "user": {},
            "v": "2024-01-01.1",
        },
        "events": [first.to_wire(), second.to_wire()],
        "steps": {
            "hash-b": {"data": "B"},
            "hash-a": {"error": {"name": "Error", "message": "x"}},
            "hash-z": None,
        },
        "ctx": {
            "fn_id": "uuid-app-fn",
            "run_id": RUN_ID,
            "env": "",
            "step_id": "step",
            "attempt": 2,
            "max_attempts": 5,
            "stack": {"stack": ["hash-b", "hash-a", "hash-z"], "current": 3},
            "qi_id": "77",
            "disable_immediate_execution": True,
            "use_api": False,
        },
        "defers": {},
        "version": 1,
        "use_api": False,
    }
    assert isinstance(body["event"]["ts"], int)
    assert "user" in body["event"]
    assert list(body["steps"]) == ["hash-b", "hash-a", "hash-z"]


def test_build_call_body_of_a_fresh_run() -> None:
    body = call_body(run_state(request_version=-1))
    assert body["ctx"]["stack"] == {"stack": [], "current": 0}
    assert body["steps"] == {}
    assert body["version"] == -1
    assert "v" not in body["event"]
    assert body["ctx"]["disable_immediate_execution"] is False


def test_build_call_body_without_events() -> None:
    body = call_body(run_state(events=[]))
    assert body["event"] == {} and body["events"] == []


def test_wildcards_do_not_match_internal_events_unless_they_name_them() -> None:
    everything = function_record("app-all", triggers=[{"event": "*"}])
    internal = function_record("app-internal", triggers=[{"event": "inngest/function.*"}])
    registry = registry_of(everything, internal)

    def slugs(name: str) -> list[str]:
        return [spec.slug for spec, _ in registry.triggered_by(name)]

    assert slugs("app/x") == ["app-all"]
    assert slugs("inngest/function.finished") == ["app-internal"]
    assert slugs("inngest/scheduled.timer") == []
