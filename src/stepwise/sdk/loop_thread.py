"""An event loop on a thread of its own, for callers that have none (WSGI, Lambda).

The serve endpoint is async at heart: the execution, the HTTP calls it makes and the
threads ``def`` handlers run in all hang off an event loop. A sync framework calls
``LoopThread.run(coroutine)`` from its request thread and blocks until the coroutine is
done; the coroutines of concurrent requests share the one loop. The loop starts on first
use, and again in a forked child (a pre-fork server's workers do not inherit threads).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END: Any = object()


class LoopThread:
    __slots__ = ("_lock", "_loop", "_name", "_pid")

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop thread and wait for its result (or exception)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._running_loop()).result()

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """``items`` (an async iterator living on the loop) for sync code, one at a time."""

        async def next_item() -> T:
            try:
                return await anext(items)
            except StopAsyncIteration:
                return _END  # type: ignore[no-any-return]

        try:
            while (item := self.run(next_item())) is not _END:
                yield item
        finally:
            close = getattr(items, "aclose", None)
            if close is not None:  # the consumer stopped early: end the generator there
                self.run(close())

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=self._name, daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop
