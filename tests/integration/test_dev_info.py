"""``GET /dev`` answers in the reference dev server's shape, which the official JS SDK's tests read.

The JS SDK's ``checkIntrospection`` helper looks for each function's ``name``, its
``triggers`` as synced, and a step ``{id: "step", name: "step", uri}`` whose URI ends in
``?fnId=<app>-<fn>&stepId=step`` (``tests/interop`` runs that check with the SDK's own zod).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from stepwise import __version__
from support.harness import Stack

APP_URL = "http://127.0.0.1:9/api/inngest"


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("dev-info"), "events_app", functions=2) as s:
        yield s


def dev_info(stack: Stack) -> dict[str, Any]:
    response = stack.server.http.get("/dev")
    assert response.status_code == 200, response.text
    info: dict[str, Any] = response.json()
    return info


def by_id(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in info["functions"]}


def test_dev_has_the_reference_top_level_fields(stack: Stack) -> None:
    info = dev_info(stack)

    assert set(info) == {
        "version",
        "authed",
        "startOpts",
        "functions",
        "handlers",
        "isSingleNodeService",
        "isMissingSigningKey",
        "isMissingEventKeys",
        "features",
    }
    assert info["version"] == __version__
    assert info["startOpts"]["urls"] == [stack.app.url]
    assert info["handlers"] == [] and info["features"] == {}
    assert info["isSingleNodeService"] is True
    assert (info["isMissingSigningKey"], info["isMissingEventKeys"]) == (False, False)


def test_dev_lists_a_synced_function_with_its_triggers_and_step(stack: Stack) -> None:
    counted = by_id(dev_info(stack))["events-counted"]

    assert counted["name"] == "counted"
    assert counted["triggers"] == [{"event": "events/counted"}]
    [step] = counted["steps"]
    assert (step["id"], step["name"]) == ("step", "step")
    assert step["uri"].startswith(stack.app.url)
    assert re.fullmatch(r"http.+\?fnId=.+-counted&stepId=step", step["uri"]), step["uri"]


def function(fn_id: str, name: str, triggers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": fn_id,
        "name": name,
        "triggers": triggers,
        "steps": {
            "step": {
                "id": "step",
                "name": "step",
                "runtime": {"type": "http", "url": f"{APP_URL}?fnId={fn_id}&stepId=step"},
                "retries": {"attempts": 2},
            }
        },
    }


def test_dev_shows_triggers_exactly_as_synced(stack: Stack) -> None:
    triggers = {
        "shapes-filtered": [{"event": "shapes/a", "expression": "event.data.n > 1"}],
        "shapes-scheduled": [{"cron": "0 0 1 1 *", "jitter": "30s"}, {"cron": "TZ=UTC 0 0 1 1 *"}],
        "shapes-multiple": [{"event": "shapes/b"}, {"event": "shapes/c"}],
    }
    body = {
        "url": APP_URL,
        "appName": "shapes",
        "sdk": "py:v0",
        "framework": "test",
        "functions": [function(i, f"Shape {i}", t) for i, t in triggers.items()],
    }
    response = stack.server.http.post(
        "/fn/register", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text

    listed = by_id(dev_info(stack))
    for fn_id, synced in triggers.items():
        assert listed[fn_id] == {
            "id": fn_id,
            "slug": fn_id,
            "name": f"Shape {fn_id}",
            "triggers": synced,
            "steps": [{"id": "step", "name": "step", "uri": f"{APP_URL}?fnId={fn_id}&stepId=step"}],
        }
    assert {"events-counted", "events-waits-twice"} <= set(listed)  # the other app is still there
