"""``stepwise.ext.validation`` end to end: valid events run with typed data, an invalid
one fails its run at once naming the field, and the app's own sends are checked too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import Stack

# The SDK's middleware is under test, not the store: one backend is enough.
pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "validation_app", functions=2) as s:
        yield s


def test_valid_events_run_with_their_models(stack: Stack) -> None:
    event_id = stack.server.send("user/signup", {"email": "ada@example.com"})
    run = stack.server.wait_for_run(event_id)
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"greeting": "hello ada@example.com", "plan": "free"}
    [welcomed] = stack.server.events("user/welcomed")
    assert welcomed["data"] == {"email": "ada@example.com", "greeting": "hello ada@example.com"}
    follow_up = stack.server.wait_for_run(welcomed["internal_id"])
    assert follow_up["output"] == "HELLO ADA@EXAMPLE.COM"


def test_an_invalid_event_fails_its_run_without_retries_naming_the_field(stack: Stack) -> None:
    event_id = stack.server.send("user/signup", {"plan": "pro"})
    run = stack.server.wait_for_run(event_id)
    assert run["status"] == "Failed", stack.logs()
    error = run["output"]
    assert error["name"] == "InvalidEventError"
    assert error["message"] == "event 'user/signup' is invalid: data.email: Field required"
    history = stack.server.history(run["run_id"])
    assert [(h["kind"], h["attempt"]) for h in history] == [("RunStarted", None), ("RunFailed", 0)]


def test_an_invalid_send_from_a_step_is_refused_before_the_server(stack: Stack) -> None:
    event_id = stack.server.send("user/signup", {"email": "bob@example.com", "plan": "broken"})
    run = stack.server.wait_for_run(event_id, timeout=60)
    assert run["status"] == "Failed", stack.logs()
    assert "data.email: Input should be a valid string" in run["output"]["message"]
    assert stack.server.events("user/welcomed") == []
