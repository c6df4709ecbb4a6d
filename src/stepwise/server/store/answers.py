"""Answering an awaiting caller from a writer thread, whatever the backend."""

from __future__ import annotations

import asyncio
from typing import Any


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def answer(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    """Resolve ``future`` on its own event loop, from any thread."""
    try:
        loop.call_soon_threadsafe(_resolve, future, result, error)
    except RuntimeError:
        pass  # the caller's event loop is closed: nobody is waiting any more
