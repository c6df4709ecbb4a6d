"""``POST /v1/cancellations/preview`` on a real server and app: the count and runs it answers
are the runs the same body then cancels, it creates nothing, and bad bodies are 4xx JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.harness import Stack
from support.sleepers import sleeping_runs

FOREVER = "2100-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("preview"), "dashboard_app", functions=2) as s:
        yield s


def preview(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.server.http.post("/v1/cancellations/preview", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def of_group(group: str) -> dict[str, Any]:
    """A body for the sleeper's active runs whose event is tagged ``group``."""
    return {
        "app_id": "dashboard",
        "function_id": "sleeper",
        "started_before": FOREVER,
        "if": f"event.data.group == '{group}'",
    }


def test_the_preview_counts_the_runs_the_cancellation_then_cancels(stack: Stack) -> None:
    chosen = sleeping_runs(stack.server, "preview-a", 3)
    spared = sleeping_runs(stack.server, "preview-b", 2)
    body = of_group("preview-a")
    before = stack.server.http.get("/v1/cancellations").json()["data"]

    shown = preview(stack, body)

    assert shown == {"count": 3, "runs": sorted(chosen)}
    # Nothing was created: the list is as it was, and every run still sleeps.
    assert stack.server.http.get("/v1/cancellations").json()["data"] == before
    assert all(stack.server.run(r)["status"] == "Running" for r in chosen + spared)
    # A wider expression holds both groups.
    both = {**body, "if": "event.data.group in ['preview-a', 'preview-b']"}
    assert preview(stack, both) == {"count": 5, "runs": sorted(chosen + spared)}

    created = stack.server.http.post("/v1/cancellations", json=body)
    assert created.status_code == 200, created.text
    for run_id in chosen:
        assert stack.server.wait_for_run_end(run_id)["status"] == "Cancelled", stack.logs()
    assert all(stack.server.run(r)["status"] == "Running" for r in spared)
    assert preview(stack, body) == {"count": 0, "runs": []}


def test_the_preview_respects_the_time_window(stack: Stack) -> None:
    runs = sleeping_runs(stack.server, "preview-window", 2)
    body = {
        "app_id": "dashboard",
        "function_id": "dashboard-sleeper",  # the full slug works too
        "if": "event.data.group == 'preview-window'",
    }
    assert preview(stack, {**body, "started_before": FOREVER})["count"] == 2
    assert preview(stack, {**body, "started_before": "2000-01-01T00:00:00Z"})["count"] == 0
    assert preview(stack, {**body, "started_before": FOREVER, "started_after": FOREVER}) == {
        "count": 0,
        "runs": [],
    }
    stack.server.http.post("/v1/cancellations", json={**body, "started_before": FOREVER})
    for run_id in runs:
        assert stack.server.wait_for_run_end(run_id)["status"] == "Cancelled"


def test_the_preview_names_the_first_ten_runs_and_counts_them_all(stack: Stack) -> None:
    runs = sleeping_runs(stack.server, "preview-many", 12)
    body = of_group("preview-many")
    assert preview(stack, body) == {"count": 12, "runs": sorted(runs)[:10]}
    stack.server.http.post("/v1/cancellations", json=body)
    for run_id in runs:
        assert stack.server.wait_for_run_end(run_id)["status"] == "Cancelled"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"app_id": "dashboard", "function_id": "nope", "started_before": FOREVER},
            404,
            "function_not_found",
        ),
        ({"app_id": "dashboard", "function_id": "sleeper"}, 400, "invalid_cancellation"),
        (
            {"app_id": "dashboard", "function_id": "sleeper", "started_before": "soon"},
            400,
            "invalid_cancellation",
        ),
        (
            {
                "app_id": "dashboard",
                "function_id": "sleeper",
                "started_before": FOREVER,
                "if": "event.data.x ==",
            },
            400,
            "invalid_expression",
        ),
        ([], 400, "invalid_cancellation"),
    ],
)
def test_a_bad_preview_body_is_a_json_error(
    stack: Stack, body: Any, status: int, code: str
) -> None:
    response = stack.server.http.post("/v1/cancellations/preview", json=body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.json()["error"]
