"""The dashboard's run page links an invoke to the run it started, and back is the API's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import Stack

TOOLS_FUNCTIONS = 12  # as in test_step_tools.py


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "tools_app", functions=TOOLS_FUNCTIONS) as s:
        yield s


def test_an_invoke_in_the_timeline_links_the_child_run(stack: Stack) -> None:
    event_id = stack.server.send("tools/invoke")
    parent = stack.server.wait_for_run(event_id)
    assert parent["status"] == "Completed", stack.logs()
    started = [e for e in stack.server.history(parent["run_id"]) if e["kind"] == "InvokeStarted"]
    [child_id] = [e["run_id"] for e in started]
    child = stack.server.run(child_id)
    assert child["status"] == "Completed"

    page = stack.server.http.get(f"/runs/{parent['run_id']}")
    assert page.status_code == 200
    links = re.findall(r'<a class="child-run" href="/runs/([0-9A-Z]{26})">', page.text)
    assert links == [child_id]
