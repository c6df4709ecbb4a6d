"""Test durable functions: in-process with ``TestEngine``, or on a real ``stepwise dev``.

``TestEngine`` runs a function through the SDK's own execution core in virtual time, with
steps mocked and spied on; no server, no HTTP. The pytest plugin (``stepwise.testing.
pytest_plugin``, registered as an entry point) adds the ``stepwise_server`` and
``stepwise_app`` fixtures, which run the same functions on a real server
(``stepwise.testing.server.DevServer``, ``stepwise.testing.app.ServedApp``). See
``docs/testing.md``.

Names are imported on first use: pytest loads the plugin in every session, and the engine
pulls in much of the server, which a session that never uses it should not pay for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._run import Arrival
    from .engine import ExecuteOptions, TestEngine
    from .mocks import TIMEOUT, StepRequest
    from .results import (
        HistoryItem,
        RunCancelledError,
        RunResult,
        RunState,
        SleepRecord,
        Spies,
        SpyCall,
        StepNotReachedError,
        StepRecord,
        StepResult,
        StepSpy,
        UnmockedStepError,
    )

_WHERE = {
    "Arrival": "._run",
    "ExecuteOptions": ".engine",
    "TestEngine": ".engine",
    "TIMEOUT": ".mocks",
    "StepRequest": ".mocks",
    **dict.fromkeys(
        [
            "HistoryItem",
            "RunCancelledError",
            "RunResult",
            "RunState",
            "SleepRecord",
            "Spies",
            "SpyCall",
            "StepNotReachedError",
            "StepRecord",
            "StepResult",
            "StepSpy",
            "UnmockedStepError",
        ],
        ".results",
    ),
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "TIMEOUT",
    "Arrival",
    "ExecuteOptions",
    "HistoryItem",
    "RunCancelledError",
    "RunResult",
    "RunState",
    "SleepRecord",
    "Spies",
    "SpyCall",
    "StepNotReachedError",
    "StepRecord",
    "StepRequest",
    "StepResult",
    "StepSpy",
    "TestEngine",
    "UnmockedStepError",
]
