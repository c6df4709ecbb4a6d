"""Runs of the dashboard app's ``sleeper`` (``tests/integration/apps/dashboard_app.py``),
started and waited for until each sleeps its hour: what a bulk cancellation cancels."""

from __future__ import annotations

from .harness import ServerProcess, wait_until


def sleeping_runs(server: ServerProcess, group: str, count: int) -> list[str]:
    """``count`` sleeping runs, their events' data ``{"group": group, "n": i}``; their ids."""
    events = [server.send("dash/sleeper", {"group": group, "n": n}) for n in range(count)]
    run_ids = [
        wait_until(lambda e=e: server.runs(e), timeout=20, what="the run")[0]["run_id"]
        for e in events
    ]
    for run_id in run_ids:
        wait_until(
            lambda r=run_id: any(h["kind"] == "SleepStarted" for h in server.history(r)),
            timeout=20,
            what="the run to sleep",
        )
    return run_ids
