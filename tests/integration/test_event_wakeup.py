"""An event that starts no run still wakes the queue worker for the waits it matches.

The server does not poll its queue: the worker sleeps until the next due job or until
notified. With app re-syncs off (``--no-poll``), nothing else would wake it before the
waiting run's own timeout.
"""

from __future__ import annotations

from pathlib import Path

from support.harness import Stack, wait_until

TOOLS_FUNCTIONS = 12  # apps/tools_app.py: 11 functions and one on_failure handler


def test_an_event_that_starts_no_run_resumes_a_waiting_run(backend: str, tmp_path: Path) -> None:
    with Stack(tmp_path, "tools_app", server_args=["--no-poll"], functions=TOOLS_FUNCTIONS) as s:
        event_id = s.server.send("tools/wait.start", {"order": 1, "timeout": "10m"})

        def waiting() -> bool:
            [(count,)] = s.server.query("SELECT count(*) FROM pauses WHERE kind = 'wait'")
            return int(count) == 1

        wait_until(waiting, timeout=20, what="the run to wait")
        assert s.server.runs(s.server.send("tools/approved", {"order": 1, "by": "ada"})) == []
        run = s.server.wait_for_run(event_id, timeout=20)
        assert run["status"] == "Completed", s.logs()
        assert run["output"] == {"matched": True, "by": "ada"}
