"""A targeted call whose step the app no longer has does not strand the run.

The "app" is an HTTP server of this test's own that answers like an SDK whose function
changed between calls: it plans two parallel steps, then, asked to run the second, no longer
finds it (answers with no ops, or with a step it found instead). The server closes the
vanished step, and the run goes on with a discovery call that lets the SDK decide, as the
reference's does; it never waits for the vanished step forever.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from support.harness import ServerProcess
from support.peer import Answer, Peer, Received, sync_peer

SDK_HEADERS = {
    "content-type": "application/json",
    "x-inngest-sdk": "inngest-py:v0.5.19",
    "x-inngest-req-version": "2",
}


def h(step: str) -> str:
    return hashlib.sha1(step.encode()).hexdigest()


def ops(*items: dict[str, Any]) -> Answer:
    return Answer(206, SDK_HEADERS, json.dumps(list(items)).encode())


SEEN: dict[str, int] = {}


def respond(request: Received) -> Answer:
    query = parse_qs(urlsplit(request.path).query)
    fn, target = query["fnId"][0], query["stepId"][0]
    steps = json.loads(request.body)["steps"]
    SEEN[fn] = SEEN.get(fn, 0) + 1
    if fn.startswith("redrive"):
        # Empty "None" ops only: neither progress nor an end (once, or every time).
        if fn == "redrive-forever" or SEEN[fn] == 1:
            return ops({"op": "None"})
        return Answer(200, SDK_HEADERS, b'"done"')
    if target == "step":
        if not steps:
            return ops(
                {"op": "StepPlanned", "id": h("a"), "name": "a"},
                {"op": "StepPlanned", "id": h("b"), "name": "b"},
            )
        if fn == "found-another" and h("c") not in steps:
            return ops({"op": "StepPlanned", "id": h("c"), "name": "c"})
        return Answer(200, SDK_HEADERS, json.dumps(sorted(steps)).encode())
    if target == h("a"):
        return ops({"op": "StepRun", "id": h("a"), "name": "a", "data": "A"})
    if target == h("c"):
        return ops({"op": "StepRun", "id": h("c"), "name": "c", "data": "C"})
    # Asked for "b", which the function no longer reaches.
    if fn == "found-another":
        return ops({"op": "StepPlanned", "id": h("c"), "name": "c"})
    return ops()


FUNCTIONS = ["vanish", "found-another", "redrive-once", "redrive-forever"]


@pytest.fixture(scope="module")
def app(backend: str) -> Iterator[Peer]:
    SEEN.clear()  # a new app for each backend: it has seen no call yet
    with Peer(respond) as peer:
        yield peer


@pytest.fixture(scope="module")
def server(
    backend: str, tmp_path_factory: pytest.TempPathFactory, app: Peer
) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("targeting")
    s = ServerProcess(tmp, sdk_urls=[], extra_args=["--retry-interval", "1"])
    try:
        s.start_and_wait()
        sync_peer(s, app, "t", {fn: f"t/{fn}" for fn in FUNCTIONS}, retries=0)
        yield s
    finally:
        s.close()


def calls(app: Peer, fn: str) -> list[str]:
    """The step each call of ``fn`` targeted, in order (``step`` = discovery)."""
    return [
        parse_qs(urlsplit(r.path).query)["stepId"][0]
        for r in app.requests_to(f"/api/inngest?fnId={fn}&")
    ]


def test_a_vanished_parallel_step_lets_the_run_go_on(server: ServerProcess, app: Peer) -> None:
    run = server.wait_for_run(server.send("t/vanish"), timeout=30)
    assert run["status"] == "Completed", server.log()
    assert run["output"] == [h("a")]
    made = calls(app, "vanish")
    assert made[0] == "step" and made[-1] == "step" and len(made) == 4, made
    assert sorted(made[1:3]) == sorted([h("a"), h("b")])


def test_a_step_found_instead_of_the_target_is_run(server: ServerProcess, app: Peer) -> None:
    run = server.wait_for_run(server.send("t/found-another"), timeout=30)
    assert run["status"] == "Completed", server.log()
    assert run["output"] == sorted([h("a"), h("c")])
    made = calls(app, "found-another")
    assert made.count(h("c")) == 1 and made[-1] == "step", made


def test_a_reply_of_only_empty_ops_drives_discovery_again(server: ServerProcess, app: Peer) -> None:
    run = server.wait_for_run(server.send("t/redrive-once"), timeout=30)
    assert (run["status"], run["output"]) == ("Completed", "done"), server.log()
    assert calls(app, "redrive-once") == ["step", "step"]


def test_empty_ops_forever_fail_the_run_after_a_bounded_number_of_calls(
    server: ServerProcess, app: Peer
) -> None:
    run = server.wait_for_run(server.send("t/redrive-forever"), timeout=30)
    assert run["status"] == "Failed", server.log()
    assert "no ops to run" in run["output"]["message"]
    assert len(calls(app, "redrive-forever")) == 11
