"""The Functions page tells a function's configuration in words: forms the e2e app does not
sync (run-level concurrency, shared scopes, batch conditions, singleton skip, no options),
and text from the config is escaped, never markup."""

from __future__ import annotations

from typing import Any

from stepwise.server.dashboard.functions_page import settings, trigger_texts


def told(config: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s.label, str(s.text)) for s in settings(config)]


def test_run_level_concurrency_and_shared_scopes() -> None:
    config = {
        "concurrency": {
            "fn": [{"limit": 1}],
            "step": [{"limit": 3, "key": "event.data.team", "scope": "account"}],
        }
    }
    assert told(config)[:2] == [
        ("Concurrency", "at most 1 run at once"),
        (
            "Concurrency",
            "at most 3 steps at once per <code>event.data.team</code>, shared across the account",
        ),
    ]


def test_batch_condition_singleton_skip_and_default_retries() -> None:
    config = {
        "batchEvents": {"maxSize": 10, "timeout": "5s", "if": "event.data.bulk"},
        "singleton": {"mode": "skip"},
    }
    assert told(config) == [
        (
            "Batching",
            "up to 10 events per run, or what came within 5s;"
            " only events where <code>event.data.bulk</code>",
        ),
        ("Singleton", "one run at a time; a new run is skipped while one runs"),
        ("Retries", "4 retries (5 attempts)"),
    ]


def test_a_function_without_options_has_only_its_retries() -> None:
    assert told({"steps": {"step": {"retries": {"attempts": 0}}}}) == [
        ("Retries", "0 retries (1 attempt)")
    ]


def test_text_from_the_config_is_escaped() -> None:
    config = {
        "triggers": [{"event": "<b>x</b>", "expression": "event.data.a < 1 && true"}],
        "idempotency": "<script>",
    }
    [trigger] = trigger_texts(config)
    assert str(trigger) == (
        "event <code>&lt;b&gt;x&lt;/b&gt;</code> if <code>event.data.a &lt; 1 &amp;&amp; true</code>"
    )
    assert ("Idempotency", "one run per <code>&lt;script&gt;</code> in 24 hours") in told(config)
