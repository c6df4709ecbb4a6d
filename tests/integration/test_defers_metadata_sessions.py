"""Our SDK's defers, run and step metadata, and sessions, against the real server.

The app (``apps/extras_app.py``) writes what its functions saw to a ledger; the tests read
it, the runs and their histories through the REST API, and, after a crash, the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stepwise
from stepwise.protocol import hash_step_id
from support.harness import Stack, wait_until
from support.sessions import BATCH_METAS, SHARED, run_a_batch

FUNCTIONS = 10


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("extras")
    with Stack(tmp, "extras_app", server_args=["--retry-interval", "1"], functions=FUNCTIONS) as s:
        yield s


def deferred_runs_of(stack: Stack, parent_run_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in stack.app.ledger_of("deferred")
        if any(p["run_id"] == parent_run_id for p in e["parents"])
    ]


def wait_for_deferred(stack: Stack, parent_run_id: str, count: int = 1) -> list[dict[str, Any]]:
    return wait_until(
        lambda: (found := deferred_runs_of(stack, parent_run_id)) and len(found) >= count and found,
        timeout=30,
        what="the deferred run",
    )


def defer_history(stack: Stack, run_id: str) -> list[tuple[str, str | None]]:
    return [
        (h["kind"], h["name"])
        for h in stack.server.history(run_id)
        if h["kind"].startswith("Defer")
    ]


def test_a_defer_starts_its_run_once_the_parent_completes(stack: Stack) -> None:
    parent = stack.server.wait_for_run(stack.server.send("x/defer.complete", {"n": 21}))
    assert parent["status"] == "Completed", stack.logs()
    assert parent["output"] == 42
    [deferred] = wait_for_deferred(stack, parent["run_id"])
    assert deferred["data"] == {"from": "complete", "n": 21}
    assert deferred["parents"] == [
        {"fn_slug": "extras-parent-completes", "run_id": parent["run_id"]}
    ]
    assert defer_history(stack, parent["run_id"]) == [
        ("DeferAdded", "notify"),
        ("DeferStarted", "notify"),
    ]
    # The deferred event is stored like any other, named for what it is.
    [event] = [
        e
        for e in stack.server.events("inngest/deferred.schedule")
        if e["data"]["_inngest"]["parent_run_id"] == parent["run_id"]
    ]
    assert event["data"]["_inngest"]["fn_slug"] == "extras-later"
    [child] = stack.server.runs(event["internal_id"])
    assert stack.server.wait_for_run_end(child["run_id"])["output"] == "later done"


def test_a_defer_starts_its_run_when_the_parent_fails(stack: Stack) -> None:
    parent = stack.server.wait_for_run(stack.server.send("x/defer.fail"))
    assert parent["status"] == "Failed", stack.logs()
    assert parent["output"]["message"] == "the parent failed after deferring"
    [deferred] = wait_for_deferred(stack, parent["run_id"])
    assert deferred["data"] == {"from": "fail"}


def test_an_aborted_defer_never_starts(stack: Stack) -> None:
    parent = stack.server.wait_for_run(stack.server.send("x/defer.abort"))
    assert parent["status"] == "Completed", stack.logs()
    [kept] = wait_for_deferred(stack, parent["run_id"])
    assert kept["data"] == {"from": "kept"}
    assert defer_history(stack, parent["run_id"]) == [
        ("DeferAdded", "dropped"),
        ("DeferAdded", "kept"),
        ("DeferAborted", "dropped"),
        ("DeferStarted", "kept"),
    ]
    # Only the kept one has an event: the aborted one was never sent.
    assert [
        e["data"]["from"]
        for e in stack.server.events("inngest/deferred.schedule")
        if e["data"]["_inngest"]["parent_run_id"] == parent["run_id"]
    ] == ["kept"]


def test_metadata_written_by_a_step_and_through_the_api_reads_back(stack: Stack) -> None:
    run = stack.server.wait_for_run(stack.server.send("x/metadata"))
    assert run["status"] == "Completed", stack.logs()
    run_id = run["run_id"]

    sdk = stepwise.Stepwise(app_id="tester", is_production=False, api_base_url=stack.server.url)
    asyncio.run(sdk.set_metadata(run_id, {"reviewed": True}, kind="review"))
    asyncio.run(sdk.set_metadata(run_id, {"note": "fine"}, step_id="other"))
    # A step the run never had: accepted, and nothing is written.
    asyncio.run(sdk.set_metadata(run_id, {"note": "lost"}, step_id="no-such-step"))

    shown = [
        (h["step_id"], h["metadata"]["scope"], h["metadata"]["kind"], h["metadata"]["values"])
        for h in stack.server.history(run_id)
        if h["kind"] == "Metadata"
    ]
    work, other = hash_step_id("work"), hash_step_id("other")
    ai = {
        "operation_name": "chat",
        "request_model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "input_tokens": 1000,
        "output_tokens": 500,
        # 1000 input tokens at $0.15 and 500 output at $0.60 per million.
        "estimated_cost": 0.00045,
    }
    assert shown == [
        (work, "step", "userland.default", {"status": "checked"}),
        (work, "step", "userland.default", {"status": "ok", "rows": 3}),
        (work, "run", "userland.progress", {"phase": "scored"}),
        (work, "step", "inngest.ai", ai),
        (None, "run", "userland.review", {"reviewed": True}),
        (other, "step", "userland.default", {"note": "fine"}),
    ]
    # The run's page shows the latest values of each kind.
    page = stack.server.http.get(f"/runs/{run_id}").text
    assert 'id="run-metadata"' in page
    assert (
        "scored" in page
        and "reviewed" in page
        and "checked" not in page.split('id="run-metadata"')[1].split("</section>")[0]
    )


def test_metadata_api_refuses_what_it_cannot_keep(stack: Stack) -> None:
    run = stack.server.wait_for_run(stack.server.send("x/metadata"))
    url = f"/v1/runs/{run['run_id']}/metadata"
    cases = [
        ({"metadata": [{"kind": "inngest.secret", "values": {}}]}, 400, "invalid_metadata"),
        ({"metadata": [{"kind": "x", "values": {"big": "y" * 70_000}}]}, 413, "metadata_too_large"),
        (
            {"target": {"step_index": 1}, "metadata": [{"kind": "x", "values": {}}]},
            400,
            "invalid_metadata_target",
        ),
        ({"metadata": [{"kind": "x", "values": [1]}]}, 400, "invalid_metadata"),
        ({"metadata": []}, 400, "invalid_metadata"),
    ]
    for body, status, code in cases:
        answer = stack.server.http.post(url, json=body)
        assert (answer.status_code, answer.json()["code"]) == (status, code), body
    missing = stack.server.http.post(
        "/v1/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV/metadata",
        json={"metadata": [{"kind": "x", "values": {}}]},
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "run_not_found")


def sessions_seen(stack: Stack, role: str, **data: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in stack.app.ledger_of("sessions", role=role)
        if all(e["data"].get(k) == v for k, v in data.items())
    ]


def test_sessions_go_on_through_send_invoke_and_defers(stack: Stack) -> None:
    tag = "t1"
    event_id = stack.server.send(
        "x/sessions.parent",
        {"tag": tag},
        meta={"sessions": {"org": "acme", "conv": 42}},
    )
    parent = stack.server.wait_for_run(event_id, timeout=60)
    assert parent["status"] == "Completed", stack.logs()
    # The stored event keeps its meta, ids made strings.
    stored = stack.server.http.get(f"/v1/events/{event_id}").json()["data"]
    assert stored["meta"] == {"sessions": {"org": "acme", "conv": "42"}}
    inherited = {"org": "acme", "conv": "42"}
    calls = sessions_seen(stack, "parent", tag=tag)  # one a call: it replays
    assert [c["sessions"] for c in calls] == [inherited] * len(calls)
    me = calls[0]

    def child(via: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = wait_until(
            lambda: [
                e for e in stack.app.ledger_of("sessions", role=f"child-{via}") if e["t"] >= me["t"]
            ],
            timeout=30,
            what=f"the child of {via}",
        )
        return found[-1]

    assert child("send_event")["sessions"] == inherited
    assert child("client_send")["sessions"] == inherited
    # Its own sessions win; a null removes an inherited one.
    assert child("override")["sessions"] == {"conv": "42", "org": "other"}
    [invoked] = [e for e in stack.app.ledger_of("sessions", role="invoked") if e["t"] >= me["t"]]
    assert invoked["sessions"] == inherited
    [deferred] = wait_for_deferred(stack, parent["run_id"])
    assert deferred["sessions"] == inherited
    # The function's finish event carries the triggering event's sessions.
    finished = [
        e
        for e in stack.server.events("inngest/function.finished")
        if e["data"]["run_id"] == parent["run_id"]
    ]
    assert [e["meta"] for e in finished] == [{"sessions": inherited}]


def test_a_batch_run_has_the_sessions_its_events_share(stack: Stack) -> None:
    run, seen = run_a_batch(stack, "x/sessions.batch")
    assert run["output"] == 2
    assert seen["sessions"] == SHARED
    assert seen["metas"] == BATCH_METAS


def test_events_with_invalid_sessions_are_refused(stack: Stack) -> None:
    cases = [
        {"sessions": {str(i): "x" for i in range(6)}},
        {"sessions": {"org": True}},
        {"sessions": {"": "x"}},
        {"sessions": {"org": "x" * 600}},
        {"propagated_sessions": {"org": None}},
        "not an object",
    ]
    for meta in cases:
        answer = stack.server.http.post(
            f"/e/{stack.server.event_key}", json={"name": "x/nothing", "meta": meta}
        )
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_event_meta"), meta


def test_a_server_killed_before_storing_a_defer_or_starting_it_loses_neither(
    tmp_path: Path,
) -> None:
    """The defer is written with the step that carried it, and the deferred run is started
    with the parent's end: a kill just before either commit leaves neither half behind,
    and after the restart the deferred run starts exactly once."""
    for point in ("commit.defers", "commit.deferred_runs"):
        where = tmp_path / point
        where.mkdir()
        stack = Stack(
            where, "extras_app", server_args=["--retry-interval", "1"], functions=FUNCTIONS
        )
        stack.server.env["STEPWISE_FAULTS"] = f"{point}=crash"
        with stack:
            event_id = stack.server.send("x/defer.crash")
            proc = stack.server.proc
            assert proc is not None
            wait_until(
                lambda p=proc: p.poll() is not None, timeout=30, what=f"the crash at {point}"
            )
            [(run_id,)] = stack.server.query(
                "SELECT id FROM runs WHERE function_slug = ?", ("extras-parent-crashes",)
            )
            defers = stack.server.query("SELECT hashed_id FROM defers WHERE run_id = ?", (run_id,))
            steps = {
                s
                for (s,) in stack.server.query(
                    "SELECT step_id FROM steps WHERE run_id = ?", (run_id,)
                )
            }
            scheduled = stack.server.query(
                "SELECT count(*) FROM events WHERE name = 'inngest/deferred.schedule'"
            )
            if point == "commit.defers":
                # Killed before the answer that carried the defer and step "a" was stored.
                assert defers == [] and steps == set()
            else:
                # Killed as the parent ended: the defer is stored, nothing was started.
                assert defers == [(hash_step_id("notify"),)]
                assert hash_step_id("a") in steps
            assert scheduled == [(0,)]

            del stack.server.env["STEPWISE_FAULTS"]
            stack.server.start_and_wait()
            parent = stack.server.wait_for_run(event_id, timeout=60)
            assert parent["status"] == "Completed", stack.logs()
            wait_for_deferred(stack, run_id)
            assert stack.server.query(
                "SELECT count(*) FROM events WHERE name = 'inngest/deferred.schedule'"
            ) == [(1,)]
            assert len(deferred_runs_of(stack, run_id)) == 1
