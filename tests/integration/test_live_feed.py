"""GET /v1/live: server-sent events telling what changed, and a stream that ends when the
server stops (so its shutdown never waits on a listener)."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.harness import Stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "dashboard_app", functions=2) as s:
        yield s


class Listener:
    """Reads the feed on a thread: every message, as (event, data), in order."""

    def __init__(self, url: str) -> None:
        self.messages: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self.thread.start()
        assert self.opened.wait(10), "the feed did not open"

    def _read(self, url: str) -> None:
        event, data = "message", ""
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=60)) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                self.opened.set()
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        data = line.split(":", 1)[1].strip()
                    elif line == "" and data:
                        self.messages.put((event, data))
                        event, data = "message", ""
        finally:
            self.messages.put(None)  # the stream ended

    def topics_until(self, wanted: set[str], timeout: float = 10) -> set[str]:
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while not wanted <= seen:
            message = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            assert message is not None, "the stream ended"
            event, data = message
            assert event == "change"
            seen.update(json.loads(data)["topics"])
        return seen


def test_the_feed_says_events_and_runs_changed(stack: Stack) -> None:
    listener = Listener(f"{stack.server.url}/v1/live")
    event_id = stack.server.send("dash/greet", {"who": "Ada"})
    assert {"events", "runs"} <= listener.topics_until({"events", "runs"})
    stack.server.wait_for_run(event_id)


def test_the_stream_ends_when_the_server_stops(stack: Stack) -> None:
    listener = Listener(f"{stack.server.url}/v1/live")
    started = time.monotonic()
    stack.server.stop()
    listener.thread.join(10)
    assert not listener.thread.is_alive()
    assert time.monotonic() - started < 10
