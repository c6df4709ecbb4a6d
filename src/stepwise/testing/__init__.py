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

if TYPE_CHECKING:  # the names below, imported for type checkers (``X as X``: re-exported)
    from .engine import ExecuteOptions as ExecuteOptions
    from .engine import TestEngine as TestEngine
    from .mocks import TIMEOUT as TIMEOUT
    from .mocks import Arrival as Arrival
    from .mocks import StepRequest as StepRequest
    from .results import HistoryItem as HistoryItem
    from .results import RunCancelledError as RunCancelledError
    from .results import RunResult as RunResult
    from .results import RunState as RunState
    from .results import SleepRecord as SleepRecord
    from .results import Spies as Spies
    from .results import SpyCall as SpyCall
    from .results import StepNotReachedError as StepNotReachedError
    from .results import StepRecord as StepRecord
    from .results import StepResult as StepResult
    from .results import StepSpy as StepSpy
    from .results import UnmockedStepError as UnmockedStepError

_WHERE = {
    "Arrival": ".mocks",
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


__all__ = sorted(_WHERE)
