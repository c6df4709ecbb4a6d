"""schemathesis against a real dev server: every read endpoint, the event API and run control,
called with what the served ``/openapi.json`` allows (positive) and with what it forbids
(negative), answer no 5xx, only the statuses the document lists, and bodies that match its
schemas; forbidden input is refused with a 4xx. The server holds apps, events and runs in
several statuses, and a last test reads each of them by its real id, so that the schemas are
checked against stored rows, not only against 404s."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode

from stepwise.server.api.openapi import build_document
from stepwise.server.api.run_search import MAX_EXPRESSION, check_expression
from stepwise.server.expr import ExpressionError
from support.harness import Stack, wait_until

pytestmark = pytest.mark.backends("sqlite")

EXAMPLES = 100  # per operation and mode: about 2,500 requests, some 20 s


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("openapi"), "events_app", functions=2) as s:
        server = s.server
        completed = server.send("events/counted", {"n": 1})
        server.wait_for_run(completed)
        waiting = server.send("events/wait.start")
        cancelled = server.send("events/wait.start")
        for event_id in (waiting, cancelled):
            wait_until(lambda e=event_id: server.runs(e), timeout=30, what="a run")
        server.http.delete(f"/v1/runs/{server.runs(cancelled)[0]['run_id']}")
        yield s
        # Whichever tests ran on this server: a handler that raised leaves a traceback,
        # even where its 500 went unseen.
        assert "Traceback" not in server.log()


# The dev server's document, built here so that tests can be collected before a server
# runs; a test below checks that the server serves exactly this document.
document = schemathesis.openapi.from_dict(build_document(dev=True))
document.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
    deterministic=True,
)


@document.hook
def map_query(ctx: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    """Whether a ``q`` of GET /v1/runs compiles as CEL, no JSON Schema can say: a generated
    one the schema allows but CEL does not compile (nearly every random string) becomes
    a constant expression, so that a valid request stays valid; a ``q`` the schema forbids
    is left alone. test_runs_api.py checks that a ``q`` that does not compile is a 400."""
    q = query.get("q") if query else None
    if query is None or not isinstance(q, str) or not 1 <= len(q) <= MAX_EXPRESSION:
        return query
    try:
        check_expression(q)
    except ExpressionError:
        return {**query, "q": "true"}
    return query


# The live feed is a stream that never ends by itself: test_live_feed.py reads it.
schema = document.include(method="GET").exclude(path="/v1/live")


@schema.parametrize()
def test_read_endpoints_conform_to_the_document(case: Any, stack: Stack) -> None:
    case.call_and_validate(base_url=stack.server.url)


def test_docs_page_loads_only_files_the_server_serves(stack: Stack) -> None:
    page = stack.server.http.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, page.text
    for source in sources:
        assert source.startswith("/"), f"{source} would leave the machine"
        asset = stack.server.http.get(source)
        assert asset.status_code == 200, source
        assert len(asset.content) > 1000
    assert 'url: "/openapi.json"' in page.text
    assert "validatorUrl: null" in page.text  # Swagger UI would call its online validator
    assert httpx.get(f"{stack.server.url}/openapi.json").json() == build_document(dev=True)


def test_reads_of_stored_runs_and_events_conform_to_the_document(stack: Stack) -> None:
    """Generated ids nearly never exist: read every stored run and event by its real id."""
    server = stack.server
    runs = server.http.get("/v1/runs", params={"limit": 100}).json()["data"]
    events = server.http.get("/v1/events", params={"limit": 100}).json()["data"]
    statuses = {r["status"] for r in runs}
    assert {"Completed", "Running", "Cancelled"} <= statuses, statuses
    calls = [
        ("/v1/apps/{app_name}/functions", {"app_name": "events"}),
        ("/v1/apps/{app_name}", {"app_name": "events"}),
    ]
    for run in runs:
        for path in (
            "/v1/runs/{run_id}",
            "/v1/runs/{run_id}/history",
            "/v0/runs/{run_id}/batch",
            "/v0/runs/{run_id}/actions",
        ):
            calls.append((path, {"run_id": run["run_id"]}))
    for event in events:
        for path in ("/v1/events/{event_id}", "/v1/events/{event_id}/runs"):
            calls.append((path, {"event_id": event["internal_id"]}))
    for path, parameters in calls:
        case = schema[path]["GET"].Case(path_parameters=parameters)
        response = case.call_and_validate(base_url=server.url)
        assert response.status_code == 200, (path, parameters, response.text)


# The writes too: events and run control. Left out: the SDK-facing ``/fn/register`` and
# ``/v1/checkpoint``, whose bodies are the SDK protocol's and described loosely here.
control = document.include(path_regex="^/v1/(runs|cancellations|signals)|^/e/").exclude(
    method="GET"
)


@control.parametrize()
def test_write_endpoints_conform_to_the_document(case: Any, stack: Stack) -> None:
    case.call_and_validate(base_url=stack.server.url)


def test_app_resync_and_syncs_of_a_real_app_conform_to_the_document(stack: Stack) -> None:
    """Resync is left out of the generated writes (it calls the app): call it on the real
    app, and an app that is not there, then read the attempts it kept."""
    server = stack.server
    for name, status in (("events", 200), ("no-such-app", 404)):
        case = document["/v1/apps/{app_name}/resync"]["POST"].Case(
            path_parameters={"app_name": name}
        )
        response = case.call_and_validate(base_url=server.url)
        assert response.status_code == status, response.text
    response = schema["/v1/app-syncs"]["GET"].Case().call_and_validate(base_url=server.url)
    assert [s["status"] for s in response.json()["data"]] == ["ok"]
