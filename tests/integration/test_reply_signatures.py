"""Against ``stepwise start`` the server acts only on replies the app signed.

Both official SDKs sign their reply to a signed request (``X-Inngest-Signature`` over the
raw body, with the key that verified the request). The "app" here is an HTTP server of this
test's own that answers like an SDK but signs as each function's mode says: correctly, not
at all, with another key, with a stale timestamp, or, for a streamed (201) reply, in the
final chunk's headers (as the JS SDK does), only at its start over ``null`` (as the Python
SDK does), or nowhere. An unproven reply is a failed attempt with a clear error: its ops and
output never reach the run, and the run fails once its attempts are spent. A server started
with ``--accept-unsigned-stream-bodies`` takes the Python SDK's signed start as enough, and
nothing less.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from stepwise.protocol import sign
from support.harness import ServerProcess
from support.peer import Answer, Peer, Received, sync_peer

SIGNING_KEY = "signkey-prod-" + "4d" * 32
OTHER_KEY = "signkey-prod-" + "99" * 32
STEP_A = hashlib.sha1(b"a").hexdigest()
SDK_HEADERS = {
    "content-type": "application/json",
    "x-inngest-sdk": "inngest-py:v0.5.19",
    "x-inngest-req-version": "2",
}
ACCEPTED = ["signed", "streamed"]
REFUSED = {
    "unsigned": "is not signed",
    "other-key": "signature does not match",
    "stale": "too old",
    "streamed-outer": "signed only at its start, over null",
    "streamed-unsigned": "must be signed over its final body",
    "streamed-outer-other-key": "no X-Inngest-Signature header in its final chunk's headers",
    "unauthorized": "could not verify the server's request",
}
MODES = [*ACCEPTED, *REFUSED]


def respond(request: Received) -> Answer:
    """A step ``a`` on the first call, then the function's result ``"done"``, signed per mode."""
    if request.method != "POST":  # the server's sync PUTs: this app registers by hand
        return Answer(405, {"content-type": "application/json"}, b"{}")
    mode = parse_qs(urlsplit(request.path).query)["fnId"][0].removeprefix("fake-")
    if mode == "unauthorized":
        return Answer(401, {"content-type": "application/json"}, b'{"message":"Unauthorized"}')
    steps = json.loads(request.body)["steps"]
    if not steps:
        status = 206
        payload: Any = [
            {"op": "StepRun", "id": STEP_A, "name": "a", "displayName": "a", "data": "from-a"}
        ]
    else:
        status, payload = 200, "done"
    raw = json.dumps(payload).encode()
    if mode.startswith("streamed"):
        final_headers = dict(SDK_HEADERS)
        outer = dict(SDK_HEADERS)
        if mode == "streamed":
            final_headers["X-Inngest-Signature"] = sign(raw, SIGNING_KEY)
        elif mode == "streamed-outer":
            # Signed over an empty (null) body, outside the chunk that carries the real one.
            outer["x-inngest-signature"] = sign(b"null", SIGNING_KEY)
        elif mode == "streamed-outer-other-key":
            outer["x-inngest-signature"] = sign(b"null", OTHER_KEY)
        final = {"status": status, "headers": final_headers, "body": raw.decode()}
        return Answer(201, outer, b"  " + json.dumps(final).encode())
    headers = dict(SDK_HEADERS)
    if mode == "signed":
        headers["x-inngest-signature"] = sign(raw, SIGNING_KEY)
    elif mode == "other-key":
        headers["x-inngest-signature"] = sign(raw, OTHER_KEY)
    elif mode == "stale":
        headers["x-inngest-signature"] = sign(raw, SIGNING_KEY, int(time.time()) - 3600)
    return Answer(status, headers, raw)


@pytest.fixture(scope="module")
def app(backend: str) -> Iterator[Peer]:
    with Peer(respond) as peer:
        yield peer


@contextlib.contextmanager
def production_server(
    tmp: Path, app: Peer, *extra_args: str, name: str = "fake"
) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp, sdk_urls=[], extra_args=["--retry-interval", "1", *extra_args])
    s.production(signing_key=SIGNING_KEY, event_key="test-event-key")
    try:
        s.start_and_wait()
        sync_peer(s, app, name, {f"fake-{mode}": f"fake/{mode}" for mode in MODES}, retries=1)
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def server(
    backend: str, tmp_path_factory: pytest.TempPathFactory, app: Peer
) -> Iterator[ServerProcess]:
    with production_server(tmp_path_factory.mktemp("signatures"), app) as s:
        yield s


def run_of(server: ServerProcess, mode: str) -> tuple[dict[str, Any], list[str]]:
    run = server.wait_for_run(server.send(f"fake/{mode}"), timeout=60)
    history = server.http.get(f"/v1/runs/{run['run_id']}/history").json()["data"]
    return run, [h["kind"] for h in history]


@pytest.mark.parametrize("mode", ACCEPTED)
def test_a_signed_reply_is_acted_on(server: ServerProcess, app: Peer, mode: str) -> None:
    run, kinds = run_of(server, mode)
    assert (run["status"], run["output"]) == ("Completed", "done"), server.log()
    assert kinds.count("StepCompleted") == 1 and "AttemptFailed" not in kinds


@pytest.mark.parametrize("mode", list(REFUSED))
def test_an_unproven_reply_is_a_failed_attempt_and_never_applied(
    server: ServerProcess, app: Peer, mode: str
) -> None:
    run, kinds = run_of(server, mode)
    assert run["status"] == "Failed", server.log()
    error = run["output"]
    assert error["name"] == "SignatureError", error
    assert REFUSED[mode] in error["message"] and "acts only on signed replies" in error["message"]
    # Neither the step the reply claimed nor the run's start came from it; both attempts were spent.
    assert "StepCompleted" not in kinds and "RunStarted" not in kinds, kinds
    assert kinds.count("AttemptFailed") == 1 and kinds[-1] == "RunFailed", kinds
    assert len(app.requests_to(f"/api/inngest?fnId=fake-{mode}&")) == 2


def test_a_server_told_to_accepts_a_stream_signed_only_at_its_start(
    backend: str, tmp_path: Path
) -> None:
    """``--accept-unsigned-stream-bodies`` takes the Python SDK's signed opening as enough;
    an opening signed with another key, or no signature at all, is still refused."""
    with (
        Peer(respond) as app,
        production_server(
            tmp_path, app, "--accept-unsigned-stream-bodies", name="lenient"
        ) as lenient,
    ):
        run, kinds = run_of(lenient, "streamed-outer")
        assert (run["status"], run["output"]) == ("Completed", "done"), lenient.log()
        assert kinds.count("StepCompleted") == 1 and "AttemptFailed" not in kinds
        for mode in ("streamed-unsigned", "streamed-outer-other-key", "unsigned"):
            run, kinds = run_of(lenient, mode)
            assert run["status"] == "Failed", (mode, lenient.log())
            assert REFUSED[mode] in run["output"]["message"], run["output"]
            assert "StepCompleted" not in kinds, kinds
