"""The sessions batch both SDKs' tests send (JS SDK 4.x ``sessions.test.ts``, "batch")."""

from __future__ import annotations

from typing import Any

from .harness import Stack

# Two events that share one session of two: a run of both has only that one.
BATCH_METAS = [
    {"sessions": {"org": "acme", "tenant": "x"}},
    {"sessions": {"org": "acme", "tenant": "y"}},
]
SHARED = {"org": "acme"}


def run_a_batch(stack: Stack, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send the batch as ``name``; the ended run and what its function saw (the app's
    ledger line of kind ``sessions`` and role ``batch``)."""
    events = [{"name": name, "data": {"i": i}, "meta": m} for i, m in enumerate(BATCH_METAS)]
    ids = stack.server.send_events(events)
    run = stack.server.wait_for_run(ids[0])
    assert run["status"] == "Completed", stack.logs()
    [seen] = [
        e for e in stack.app.ledger_of("sessions", role="batch") if e["run_id"] == run["run_id"]
    ]
    # The SDKs that read a run's events from the API get them with their meta too.
    events_read = stack.server.http.get(f"/v0/runs/{run['run_id']}/batch").json()
    assert [e["meta"] for e in events_read] == BATCH_METAS
    return run, seen
