"""Test durable functions: in-process with ``TestEngine``, or on a real ``stepwise dev``.

``TestEngine`` runs a function through the SDK's own execution core in virtual time, with
steps mocked and spied on; no server, no HTTP. The pytest plugin (``stepwise.testing.
pytest_plugin``, registered as an entry point) adds the ``stepwise_server`` and
``stepwise_app`` fixtures, which run the same functions on a real server. See
``docs/testing.md``.
"""

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
