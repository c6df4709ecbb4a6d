"""Migrating an empty database gives exactly the canonical schema, and migrating is idempotent."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Backend, Make

# The canonical schema every backend must expose: tables and their columns, in order.
EXPECTED_SCHEMA: dict[str, list[str]] = {
    "schema_version": ["version"],
    "apps": ["id", "name", "url", "sdk", "framework", "checksum", "created_at", "updated_at"],
    "functions": ["id", "app_id", "slug", "name", "config", "url", "created_at"],
    "events": [
        "internal_id",
        "id",
        "name",
        "data",
        "user",
        "ts",
        "v",
        "received_at",
        "copy",
        "meta",
    ],
    "runs": [
        "id",
        "function_id",
        "function_slug",
        "event_id",
        "event_ids",
        "status",
        "created_at",
        "started_at",
        "ended_at",
        "output",
        "error",
        "request_version",
        "force_step_plan",
        "cron",
        "correlation_id",
        "skip_reason",
        "singleton_key",
        "concurrency",
        "throttle",
        "run_concurrency",
        "original_run_id",
        "queue_rank",
    ],
    "steps": ["run_id", "step_id", "seq", "memo"],
    "jobs": [
        "id",
        "key",
        "run_id",
        "kind",
        "step_id",
        "attempt",
        "run_at",
        "lease",
        "payload",
        "generation",
        "faults",
        "wait_key",
        "wait_rank",
        "wait_since",
    ],
    "idempotency": ["function_id", "key", "run_id", "expires_at"],
    "history": ["id", "run_id", "at", "kind", "step_id", "name", "attempt", "data"],
    "pauses": [
        "id",
        "key",
        "run_id",
        "step_id",
        "kind",
        "event_name",
        "expression",
        "index_path",
        "index_value",
        "signal",
        "expires_at",
        "created_at",
        "data",
    ],
    "rate_limits": ["key", "tat"],
    "concurrency_slots": ["job_id", "ckey", "expires_at"],
    "run_slots": ["run_id", "ckey"],
    "debounces": ["key", "function_id", "event_id", "event_ts", "first_at", "due_at", "job_key"],
    "batches": ["key", "batch_id", "function_id", "function_slug", "event_ids", "first_at"],
    "open_steps": ["run_id", "step_id", "batch", "race"],
    "cancellations": [
        "id",
        "app_id",
        "function_slug",
        "started_after",
        "started_before",
        "expression",
        "created_at",
    ],
    "counters": ["name", "value"],
    "api_keys": ["id", "name", "key_hash", "created_at", "last_used_at", "revoked_at"],
    "app_syncs": ["url", "app_name", "added_at", "attempted_at", "ok", "error"],
    "defers": [
        "run_id",
        "hashed_id",
        "seq",
        "user_id",
        "fn_slug",
        "input",
        "meta",
        "status",
        "created_at",
    ],
    "endpoint_runs": [
        "run_id",
        "method",
        "url",
        "content_type",
        "retries",
        "token",
        "stream_token",
        "stream_seq",
        "stream_bytes",
        "created_at",
    ],
    "endpoint_streams": ["run_id", "seq", "chunk"],
}
# PostgreSQL's first migration is SQLite's schema after its ninth: later ones share numbers.
EXPECTED_VERSIONS = {
    "sqlite": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17],
    "postgres": [9, 10, 11, 12, 13, 14, 15, 16, 17],
}


async def test_migrating_an_empty_database_gives_exactly_the_canonical_schema(
    backend: Backend,
) -> None:
    store = backend.new_store()
    await store.open()
    try:
        assert backend.schema() == EXPECTED_SCHEMA
        assert backend.schema_versions() == EXPECTED_VERSIONS[backend.name]
    finally:
        await store.close()


async def test_reopening_a_migrated_database_changes_nothing(backend: Backend, make: Make) -> None:
    app = make.app()
    fn = make.function(app, "fulfil")
    first = backend.new_store()
    await first.open()
    try:
        await first.sync_app(app, [fn], [])
    finally:
        await first.close()

    for _ in range(2):
        again = backend.new_store()
        await again.open()
        try:
            assert await again.list_apps() == [app]
            assert await again.list_functions() == [fn]
        finally:
            await again.close()

    assert backend.schema_versions() == EXPECTED_VERSIONS[backend.name]
    assert backend.schema() == EXPECTED_SCHEMA
