"""``step.fetch`` goes through the server's guarded outbound client.

Against ``stepwise start`` the server refuses loopback, private and other non-public
destinations unless ``--outbound-allow`` names their network (``--outbound-deny`` always
wins), checking the addresses a name resolves to; it follows no redirect, keeps at most
4 MB of a body and gives up after ``--outbound-timeout``. A refusal or an oversized body
fails the step at once with a ``GatewayError`` the function can catch; a timeout may pass,
so it is retried like any step.

The fetch targets are HTTP servers of this test's own on 127.0.0.1, 127.0.0.2 and
127.0.0.3 (all loopback on Linux): the server is told to allow 127.0.0.2/31 and deny
127.0.0.3, which leaves 127.0.0.1 refused as loopback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from support.harness import Stack
from support.peer import Answer, Peer, Received

SIGNING_KEY = "signkey-prod-" + "7a" * 32
MAX_BODY = 4 * 1024 * 1024
TIMEOUT_S = 3


class Targets:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.loopback = Peer(self.respond)
        self.allowed = Peer(self.respond, host="127.0.0.2")
        self.denied = Peer(self.respond, host="127.0.0.3")

    def respond(self, request: Received) -> Answer:
        path = urlsplit(request.path)
        if path.path == "/slow":
            self.release.wait(timeout=60)  # past the server's timeout; freed when the tests end
            return Answer(200, body=b"late")
        if path.path == "/redirect":
            return Answer(302, {"location": parse_qs(path.query)["to"][0]})
        if path.path == "/big":
            return Answer(200, {"content-type": "text/plain"}, b"x" * (MAX_BODY + 1))
        return Answer(200, {"content-type": "text/plain"}, b"hello")

    def reached(self, path: str) -> bool:
        return any(
            r.path == path
            for peer in (self.loopback, self.allowed, self.denied)
            for r in peer.received
        )


@pytest.fixture(scope="module")
def targets(backend: str) -> Iterator[Targets]:
    t = Targets()
    with t.loopback, t.allowed, t.denied:
        try:
            yield t
        finally:
            t.release.set()


@pytest.fixture(scope="module")
def stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("outbound"),
        "outbound_app",
        app_env={"STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY},
        server_args=[
            "--retry-interval",
            "1",
            "--outbound-timeout",
            str(TIMEOUT_S),
            "--outbound-allow",
            "127.0.0.2/31",
            "--outbound-deny",
            "127.0.0.3",
        ],
    )
    s.server.production(signing_key=SIGNING_KEY, event_key="test-event-key")
    with s:
        yield s


def fetch(stack: Stack, url: str) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """Run the app's function on ``url``: its output, and what became of the fetch step."""
    event_id = stack.server.send("outbound/fetch", {"url": url})
    run = stack.server.wait_for_run(event_id, timeout=60)
    assert run["status"] == "Completed", stack.logs()
    history = stack.server.http.get(f"/v1/runs/{run['run_id']}/history").json()["data"]
    step = [
        (h["kind"], h["attempt"])
        for h in history
        if h["name"] == "fetch" and h["kind"] in ("StepCompleted", "StepErrored", "StepFailed")
    ]
    output: dict[str, Any] = run["output"]
    return output, step


@pytest.mark.parametrize(
    ("url", "because"),
    [
        ("http://127.0.0.1:{loopback}/ok?case=literal", "127.0.0.1 is a loopback address"),
        ("http://localhost:{loopback}/ok?case=name", "localhost resolves to"),
        ("http://[::1]:{loopback}/ok?case=ipv6", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]:{loopback}/ok?case=mapped", "is a loopback address"),
        ("http://127.0.0.3:{denied}/ok?case=denied", "refused by --outbound-deny"),
    ],
    ids=["ipv4-literal", "name", "ipv6-literal", "ipv4-mapped-ipv6", "denied-though-allowed"],
)
def test_a_refused_destination_fails_the_step_at_once(
    stack: Stack, targets: Targets, url: str, because: str
) -> None:
    target = url.format(loopback=targets.loopback.port, denied=targets.denied.port)
    output, step = fetch(stack, target)
    assert output["error"] == "GatewayError", output
    assert "refused to connect" in output["message"] and because in output["message"], output
    assert step == [("StepFailed", 0)]  # not retried: the same destination stays refused
    parts = urlsplit(target)
    assert not targets.reached(f"{parts.path}?{parts.query}")


def test_an_allowed_network_is_reached(stack: Stack, targets: Targets) -> None:
    output, step = fetch(stack, f"{targets.allowed.url}/ok?case=allowed")
    assert (output["status"], output["body"]) == (200, "hello"), output
    assert step == [("StepCompleted", 0)]
    assert targets.reached("/ok?case=allowed")


def test_a_redirect_is_the_answer_not_followed(stack: Stack, targets: Targets) -> None:
    after = f"{targets.allowed.url}/ok?case=after-redirect"
    output, step = fetch(stack, f"{targets.allowed.url}/redirect?to={after}")
    assert output["status"] == 302, output
    assert output["headers"]["location"] == after
    assert step == [("StepCompleted", 0)]
    assert not targets.reached("/ok?case=after-redirect")


def test_a_body_over_4_mb_fails_the_step_instead_of_being_cut(
    stack: Stack, targets: Targets
) -> None:
    output, step = fetch(stack, f"{targets.allowed.url}/big")
    assert output["error"] == "GatewayError", {k: str(v)[:200] for k, v in output.items()}
    assert f"larger than {MAX_BODY} bytes" in output["message"]
    assert step == [("StepFailed", 0)]


def test_a_request_past_the_timeout_is_retried_then_fails(stack: Stack, targets: Targets) -> None:
    output, step = fetch(stack, f"{targets.allowed.url}/slow")
    assert output["error"] == "GatewayError", output
    assert f"within {TIMEOUT_S} s" in output["message"]
    assert step == [("StepErrored", 0), ("StepFailed", 1)]  # a timeout may pass: retried once
    assert len(targets.allowed.requests_to("/slow")) == 2
