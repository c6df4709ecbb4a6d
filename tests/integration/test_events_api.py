"""The event API behaves as the reference's does where the official SDKs can tell.

Retried sends (the same ``x-inngest-event-id-seed``) keep every copy under one id and start
one run per event; a batch with a bad event keeps the events before it; events may be as
large as ``--max-event-size`` (3 MB in dev mode, 512 KB in production).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepwise.protocol import headers as h
from stepwise.protocol import ids_from_seed, make_seed
from support.harness import ServerProcess, Stack, wait_until


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("events"), "events_app", functions=2) as s:
        yield s


def post(server: ServerProcess, events: Any, *, seed: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if seed is not None:
        headers[h.EVENT_ID_SEED] = seed
    return server.http.post(f"/e/{server.event_key}", content=json.dumps(events), headers=headers)


def sent_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == 200
    ids: list[str] = body["ids"]
    return ids


def listed(server: ServerProcess, name: str) -> list[dict[str, Any]]:
    response = server.http.get("/v1/events", params={"name": name, "limit": 100})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    return events


def history_kinds(server: ServerProcess, run_id: str) -> list[str]:
    return [e["kind"] for e in server.http.get(f"/v1/runs/{run_id}/history").json()["data"]]


# ---- a send retried with the same seed ------------------------------------------------


def test_a_retried_send_keeps_every_copy_under_one_id_and_starts_one_run(stack: Stack) -> None:
    server = stack.server
    seed = make_seed()
    # What each attempt carried differs here only so the copies can be told apart.
    answers = [
        sent_ids(post(server, [{"name": "events/counted", "data": {"attempt": n}}], seed=seed))
        for n in (1, 2, 3)
    ]

    assert answers[0] == answers[1] == answers[2] == ids_from_seed(seed, 1)
    [internal] = answers[0]
    copies = [e for e in listed(server, "events/counted") if e["internal_id"] == internal]
    assert [e["data"] for e in copies] == [{"attempt": 3}, {"attempt": 2}, {"attempt": 1}]
    assert {e["id"] for e in copies} == {internal}  # no id given: the public id is the internal one
    # The event itself is its first copy, and only that copy started a run.
    first = server.http.get(f"/v1/events/{internal}").json()["data"]
    assert (first["internal_id"], first["data"]) == (internal, {"attempt": 1})
    assert len(server.runs(internal)) == 1
    run = server.wait_for_run(internal)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"attempt": 1}
    assert stack.steps_of(run["run_id"]) == [("count", 0)]
    assert len(server.runs(internal)) == 1


def test_copies_of_a_batch_with_user_ids_keep_those_ids(stack: Stack) -> None:
    server = stack.server
    seed = make_seed()
    batch = [
        {"name": "events/counted", "id": "order-17", "data": {"order": 17}},
        {"name": "events/counted", "data": {"order": 18}},
    ]

    first, again = (sent_ids(post(server, batch, seed=seed)) for _ in range(2))

    assert first == again == ids_from_seed(seed, 2)
    stored = listed(server, "events/counted")
    for internal, public in zip(first, ["order-17", first[1]], strict=True):
        copies = [e for e in stored if e["internal_id"] == internal]
        assert [e["id"] for e in copies] == [public, public]
        assert server.wait_for_run(internal)["status"] == "Completed", stack.logs()
        assert len(server.runs(internal)) == 1


def test_pages_of_events_split_between_copies_lose_and_repeat_nothing(stack: Stack) -> None:
    server = stack.server
    now = int(time.time() * 1000)
    name = "events/paged"  # nothing listens: only the listing is under test
    for seed, copies in ((make_seed(now - 3000), 3), (make_seed(now - 2000), 2)):
        for n in range(copies):
            sent_ids(post(server, {"name": name, "data": {"seed": seed, "copy": n}}, seed=seed))
    sent_ids(post(server, {"name": name, "data": {"last": True}}))
    everything = listed(server, name)
    assert len(everything) == 6

    pages: list[list[dict[str, Any]]] = []
    cursors: list[str] = []
    params: dict[str, str | int] = {"name": name, "limit": 2}
    while True:
        response = server.http.get("/v1/events", params=params)
        assert response.status_code == 200, response.text
        page = response.json()["data"]
        if not page:
            break
        pages.append(page)
        if "x-next-cursor" not in response.headers:
            break
        cursors.append(response.headers["x-next-cursor"])
        params["cursor"] = cursors[-1]

    assert [e for page in pages for e in page] == everything
    assert [len(page) for page in pages] == [2, 2, 2]
    assert any("." in c for c in cursors)  # a page ended between two copies of one event


def test_a_retried_send_resumes_a_waiting_run_once(stack: Stack) -> None:
    server = stack.server
    [start] = sent_ids(post(server, {"name": "events/wait.start"}))
    run_id = wait_until(lambda: server.runs(start)[0]["run_id"], timeout=20, what="the waiting run")
    wait_until(
        lambda: history_kinds(server, run_id).count("WaitStarted") == 1,
        timeout=20,
        what="the first wait",
    )

    seed = make_seed()
    sent_ids(post(server, {"name": "events/poke", "data": {"n": 1}}, seed=seed))
    wait_until(
        lambda: history_kinds(server, run_id).count("WaitStarted") == 2,
        timeout=20,
        what="the second wait",
    )
    # The same send retried: the run already took this event in its first wait.
    sent_ids(post(server, {"name": "events/poke", "data": {"n": 1}}, seed=seed))
    sent_ids(post(server, {"name": "events/poke", "data": {"n": 2}}))

    run = server.wait_for_run(start)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == [1, 2]


# ---- a batch with a bad event ---------------------------------------------------------


def test_a_batch_keeps_the_events_before_its_first_bad_one(stack: Stack) -> None:
    server = stack.server
    seed = make_seed()
    batch = [
        {"name": "events/counted", "data": {"batch": "a"}},
        {"name": "events/counted", "data": {"batch": "b"}},
        {"name": "events/counted", "data": ["not", "an", "object"]},
        {"name": "events/counted", "data": {"batch": "c"}},
    ]

    response = post(server, batch, seed=seed)

    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["status"], body["code"]) == (400, "invalid_event_data")
    assert "event 2" in body["error"]
    assert body["ids"] == ids_from_seed(seed, 2)
    stored = {e["internal_id"]: e["data"] for e in listed(server, "events/counted")}
    assert [stored.get(i) for i in body["ids"]] == [{"batch": "a"}, {"batch": "b"}]
    assert {"batch": "c"} not in stored.values()
    for internal, which in zip(body["ids"], "ab", strict=True):
        run = server.wait_for_run(internal)
        assert (run["status"], run["output"]) == ("Completed", {"batch": which}), stack.logs()


# ---- event sizes ---------------------------------------------------------------------

MB = 1024 * 1024


def sized(blob_bytes: int, **data: Any) -> dict[str, Any]:
    return {"name": "events/sized", "data": {"blob": "x" * blob_bytes, **data}}


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    return body


def test_the_dev_server_takes_events_up_to_3_mb(stack: Stack) -> None:
    server = stack.server
    # The official SDKs' own tests send events of 1 MB; the reference allows up to 3 MB.
    assert len(sent_ids(post(server, sized(3 * MB - 1000)))) == 1

    body = refused(post(server, sized(3 * MB)), 413, "event_too_large")
    assert str(3 * MB) in body["error"]
    assert body["ids"] == []


@pytest.fixture(scope="module")
def production(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("events-production"), sdk_urls=[])
    proc.production(signing_key="signkey-prod-" + "7a" * 32, event_key="first-key")
    proc.args += ["--event-key", "second-key"]
    proc.start_and_wait()
    yield proc
    proc.close()


def test_production_takes_events_up_to_512_kb(production: ServerProcess) -> None:
    assert len(sent_ids(post(production, sized(500 * 1024)))) == 1

    body = refused(post(production, sized(512 * 1024)), 413, "event_too_large")
    assert str(512 * 1024) in body["error"]


@pytest.mark.parametrize("key", ["first-ke", "first-key-", "ключ", "%FF%FE", "second-key%00"])
def test_production_refuses_an_unknown_event_key(production: ServerProcess, key: str) -> None:
    response = production.http.post(f"/e/{key}", content=b'{"name": "events/keyed"}')
    body = refused(response, 401, "event_key_not_found")
    assert body["ids"] == []


def test_production_takes_any_configured_event_key(production: ServerProcess) -> None:
    for key in ("first-key", "second-key"):
        response = production.http.post(f"/e/{key}", content=b'{"name": "events/keyed"}')
        assert len(sent_ids(response)) == 1
    assert "Traceback" not in production.log()


def test_max_event_size_sets_the_limit(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, sdk_urls=[], extra_args=["--max-event-size", "2000"])
    server.start_and_wait()
    try:
        seed = make_seed()
        response = post(server, [sized(1000, n=1), sized(2000, n=2), sized(10, n=3)], seed=seed)

        body = refused(response, 413, "event_too_large")
        assert "event 1" in body["error"] and "2000 bytes per event" in body["error"]
        # As with any bad event in a batch, the events before it are kept.
        assert body["ids"] == ids_from_seed(seed, 1)
        assert [e["data"]["n"] for e in listed(server, "events/sized")] == [1]
        assert "Traceback" not in server.log()
    finally:
        server.close()


def test_the_event_api_log_is_clean(stack: Stack) -> None:
    assert "Traceback" not in stack.server.log(), stack.logs()


def test_reasons_say_why_an_event_started_no_run(stack: Stack) -> None:
    server = stack.server

    def reasons(internal_id: str) -> list[dict[str, Any]]:
        response = server.http.get(f"/v1/events/{internal_id}/reasons")
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    [unwanted] = sent_ids(post(server, {"name": "events/nobody-listens"}))
    assert reasons(unwanted) == [
        {
            "function": None,
            "reason": "no function is triggered by events/nobody-listens",
            "run_id": None,
        }
    ]

    # Two events with one user id: the second is deduplicated by the first one's run.
    user_id = f"order-{time.time_ns()}"
    [first] = sent_ids(post(server, {"name": "events/counted", "id": user_id}))
    [second] = sent_ids(post(server, {"name": "events/counted", "id": user_id}))
    run = server.wait_for_run(first)
    assert reasons(first) == []  # it started a run
    [why] = reasons(second)
    assert why["function"] == "events-counted"
    assert why["reason"].startswith("deduplicated:")
    assert why["run_id"] == run["run_id"]

    unknown = server.http.get("/v1/events/01JABCDEFGHJKMNPQRSTVWXYZ0/reasons")
    assert unknown.status_code == 404 and unknown.json()["code"] == "event_not_found"


# ---- data._inngest ----------------------------------------------------------------------


def test_only_the_trace_context_of_data_inngest_survives_ingest(stack: Stack) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    meta = {
        "traceparent": traceparent,
        "tracestate": "vendor=1",
        "fn_id": "forged",
        "correlation_id": "forged.step",
    }
    sent_ids(
        post(
            stack.server,
            [
                {"name": "trace/kept", "data": {"n": 1, "_inngest": meta}},
                {"name": "trace/dropped", "data": {"_inngest": {"traceparent": "x" * 56}}},
            ],
        )
    )
    [kept] = listed(stack.server, "trace/kept")
    assert kept["data"] == {
        "n": 1,
        "_inngest": {"traceparent": traceparent, "tracestate": "vendor=1"},
    }
    [dropped] = listed(stack.server, "trace/dropped")
    assert dropped["data"] == {}
