"""``GET /v1/runs`` over HTTP: filters, pages chained by cursor while runs keep arriving,
and a 400 naming the parameter for every bad one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from support.harness import Stack, wait_until

COUNTED = "events-counted"
WAITS = "events-waits-twice"


class Runs:
    """What the module's setup created, by kind."""

    def __init__(self) -> None:
        self.completed: list[str] = []  # run ids, oldest first
        self.completed_events: list[str] = []
        self.waiting: str = ""
        self.cancelled: str = ""
        self.sent_at: list[datetime] = []  # just before each completed run's event was sent


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("runs"), "events_app", functions=2) as s:
        yield s


@pytest.fixture(scope="module")
def runs(stack: Stack) -> Runs:
    server = stack.server
    made = Runs()
    for n in range(5):
        made.sent_at.append(datetime.now(UTC))
        event_id = server.send("events/counted", {"n": n})
        made.completed.append(server.wait_for_run(event_id)["run_id"])
        made.completed_events.append(event_id)
    waiting_event = server.send("events/wait.start")
    cancelled_event = server.send("events/wait.start")
    made.waiting = wait_until(
        lambda: _running(stack, waiting_event), timeout=30, what="waiting run"
    )
    made.cancelled = wait_until(
        lambda: _running(stack, cancelled_event), timeout=30, what="second run"
    )
    assert server.http.delete(f"/v1/runs/{made.cancelled}").status_code == 200
    return made


def _running(stack: Stack, event_id: str) -> str | None:
    found = stack.server.runs(event_id)
    return found[0]["run_id"] if found and found[0]["status"] == "Running" else None


def get(stack: Stack, params: Any = None) -> httpx.Response:
    return stack.server.http.get("/v1/runs", params=params)


def ids(stack: Stack, params: Any = None) -> list[str]:
    response = get(stack, params)
    assert response.status_code == 200, response.text
    return [r["run_id"] for r in response.json()["data"]]


def newest_first(*run_ids: str) -> list[str]:
    # Run ids are ULIDs minted with the run's creation time: their order is creation order.
    return sorted(run_ids, reverse=True)


def test_lists_runs_newest_first_in_the_v1_envelope(stack: Stack, runs: Runs) -> None:
    response = get(stack)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "metadata"}
    assert set(body["metadata"]) == {"fetched_at", "cached_until", "next_cursor"}
    assert body["metadata"]["next_cursor"] is None
    assert "x-next-cursor" not in response.headers
    everything = [r["run_id"] for r in body["data"]]
    assert everything == newest_first(*runs.completed, runs.waiting, runs.cancelled)
    # Each entry is the same object GET /v1/runs/{id} returns.
    assert body["data"][-1] == stack.server.run(runs.completed[0])
    assert body["data"][-1]["output"] == {"n": 0}


def test_filters_by_status(stack: Stack, runs: Runs) -> None:
    assert ids(stack, {"status": "Completed"}) == newest_first(*runs.completed)
    assert ids(stack, {"status": "Cancelled"}) == [runs.cancelled]
    assert ids(stack, {"status": "Running"}) == [runs.waiting]
    assert ids(stack, [("status", "Running"), ("status", "Cancelled")]) == newest_first(
        runs.waiting, runs.cancelled
    )
    assert ids(stack, {"status": "Failed"}) == []


def test_filters_by_function_and_app(stack: Stack, runs: Runs) -> None:
    assert ids(stack, {"function": COUNTED}) == newest_first(*runs.completed)
    assert ids(stack, {"function": WAITS}) == newest_first(runs.waiting, runs.cancelled)
    assert ids(stack, [("function", COUNTED), ("function", WAITS)]) == ids(stack)
    assert ids(stack, {"function": "events-nothing"}) == []
    assert ids(stack, {"app": "events"}) == ids(stack)
    assert ids(stack, {"app": "other"}) == []


def test_filters_by_triggering_event(stack: Stack, runs: Runs) -> None:
    event_id = runs.completed_events[2]
    assert ids(stack, {"event_id": event_id}) == [runs.completed[2]]
    assert ids(stack, {"event_id": event_id.lower()}) == [runs.completed[2]]
    assert ids(stack, {"event_name": "events/counted"}) == newest_first(*runs.completed)
    assert ids(stack, {"event_name": "events/wait.start"}) == newest_first(
        runs.waiting, runs.cancelled
    )
    assert ids(stack, {"event_name": "events/nothing"}) == []


def test_filters_by_creation_time(stack: Stack, runs: Runs) -> None:
    before = runs.sent_at[0] - timedelta(minutes=1)
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert ids(stack, {"from": before.isoformat()}) == ids(stack)
    assert ids(stack, {"from": later.isoformat().replace("+00:00", "Z")}) == []
    assert ids(stack, {"until": before.isoformat()}) == []
    assert ids(stack, {"from": before.isoformat(), "until": later.isoformat()}) == ids(stack)
    # Each run was created after its event was sent and ended before the next was sent:
    # from (inclusive) the second send until (exclusive) the third holds the second run.
    window = {"from": runs.sent_at[1].isoformat(), "until": runs.sent_at[2].isoformat()}
    assert ids(stack, window) == [runs.completed[1]]


def test_filters_combine(stack: Stack, runs: Runs) -> None:
    params = [
        ("status", "Completed"),
        ("status", "Cancelled"),
        ("function", WAITS),
        ("app", "events"),
        ("event_name", "events/wait.start"),
    ]
    assert ids(stack, params) == [runs.cancelled]
    assert ids(stack, [*params, ("event_id", runs.completed_events[0])]) == []


def test_pages_chain_by_cursor_while_runs_arrive(stack: Stack, runs: Runs) -> None:
    server = stack.server
    expected = ids(stack, {"function": COUNTED, "limit": 100})
    seen: list[str] = []
    params: dict[str, Any] = {"function": COUNTED, "limit": 2}
    new_runs: list[str] = []
    while True:
        response = get(stack, params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["data"]) <= 2
        seen += [r["run_id"] for r in body["data"]]
        cursor = body["metadata"]["next_cursor"]
        assert response.headers.get("x-next-cursor") == cursor
        if cursor is None:
            break
        # A run created between two pages is newer than every page already read.
        event_id = server.send("events/counted", {"n": 100 + len(new_runs)})
        new_runs.append(server.wait_for_run(event_id)["run_id"])
        params["cursor"] = cursor
    assert seen == expected
    assert len(new_runs) == 2
    assert ids(stack, {"function": COUNTED, "limit": 100}) == newest_first(*new_runs) + expected


def test_q_searches_event_and_output_in_pages(stack: Stack, runs: Runs) -> None:
    params = {"q": "event.data.n >= 2 && output.n < 4", "status": "Completed"}
    first = get(stack, {**params, "limit": 1})
    assert first.status_code == 200, first.text
    body = first.json()
    assert [r["run_id"] for r in body["data"]] == [runs.completed[3]]
    assert body["metadata"]["stopped_early"] is False
    # Looked at every completed run down to the match (other tests add newer ones).
    completed = ids(stack, {"status": "Completed", "limit": 100})
    assert body["metadata"]["scanned"] == completed.index(runs.completed[3]) + 1
    cursor = body["metadata"]["next_cursor"]
    assert first.headers["x-next-cursor"] == cursor

    second = get(stack, {**params, "limit": 1, "cursor": cursor}).json()
    assert [r["run_id"] for r in second["data"]] == [runs.completed[2]]
    rest = get(stack, {**params, "cursor": second["metadata"]["next_cursor"]}).json()
    assert rest["data"] == []
    assert rest["metadata"]["next_cursor"] is None
    assert ids(stack, {**params, "limit": 10}) == [runs.completed[3], runs.completed[2]]
    # A run the expression cannot be evaluated on (no output yet) is simply no match.
    assert ids(stack, {"q": "output.n == 0"}) == [runs.completed[0]]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"status": "completed"}, "status"),
        ({"status": "Done"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ([("limit", "1"), ("limit", "2")], "limit"),
        ({"from": "yesterday"}, "from"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"event_id": "not-a-ulid"}, "event_id"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "MTIzOm9vcHM6"}, "cursor"),  # base64 of a malformed "123:oops:"
        ({"app": ""}, "app"),
        ({"function": "x" * 513}, "function"),
        ({"stauts": "Failed"}, "stauts"),
        ({"q": "event.data.n =="}, "q"),
        ({"q": ""}, "q"),
        ({"q": "x" * 5000}, "q"),
    ],
)
def test_a_bad_parameter_is_a_400_that_names_it(
    stack: Stack, runs: Runs, params: Any, parameter: str
) -> None:
    response = get(stack, params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_parameter"
    assert body["status"] == 400
    assert body["parameter"] == parameter
    assert repr(parameter) in body["error"]
