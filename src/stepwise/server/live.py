"""The live feed: which kinds of things changed, told to everyone listening at once.

The engine publishes a topic — ``runs`` (a run's state moved), ``events`` (events were
stored), ``apps`` (the function set changed) — whenever this node commits such a change
or another node sharing the database says it did. Listeners (``GET /v1/live``, a
server-sent-events stream the dashboard's pages follow) get each topic at most once while
they have not read it yet: a burst of commits is one message, not thousands.

``StreamHub`` does the same for one durable endpoint's stream: a tee that appended to a
run's stream on this node wakes that stream's subscribers here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

TOPICS = ("runs", "events", "apps")


class LiveFeed:
    def __init__(self) -> None:
        self._listeners: set[_Listener] = set()
        self.closed = asyncio.Event()

    def publish(self, topic: str) -> None:
        for listener in self._listeners:
            listener.tell(topic)

    def close(self) -> None:
        """The server is stopping: every stream ends, so shutdown never waits on one."""
        self.closed.set()
        for listener in self._listeners:
            listener.wake.set()

    @contextmanager
    def listen(self) -> Iterator[_Listener]:
        listener = _Listener(self)
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)


class _Listener:
    def __init__(self, feed: LiveFeed) -> None:
        self._feed = feed
        self._pending: set[str] = set()
        self.wake = asyncio.Event()

    def tell(self, topic: str) -> None:
        self._pending.add(topic)
        self.wake.set()

    async def next(self, quiet_s: float) -> list[str] | None:
        """The topics changed since the last call (sorted); [] after ``quiet_s`` seconds
        of quiet; None once the feed is closed."""
        if not self._pending and not self._feed.closed.is_set():
            try:
                async with asyncio.timeout(quiet_s):
                    await self.wake.wait()
            except TimeoutError:
                return []
        if self._feed.closed.is_set():
            return None
        self.wake.clear()
        topics, self._pending = sorted(self._pending), set()
        return topics


class StreamHub:
    """Wakes this node's subscribers of a run's stream when a tee here appended to it."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}

    def appended(self, run_id: str) -> None:
        for event in self._waiting.get(run_id, ()):
            event.set()

    @contextmanager
    def subscribe(self, run_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiting.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._waiting.get(run_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiting[run_id]
