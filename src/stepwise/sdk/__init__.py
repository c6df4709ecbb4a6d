"""The SDK: client, functions, step tools, and the framework-agnostic serve handler."""

from .client import RetryPolicy, Stepwise
from .context import Context, SyncContext
from .event import Event
from .execution import StepInterrupt
from .function import Function, FunctionOptions
from .gateway import FetchResponse, fetch
from .handler import ServeHandler, ServeResponse
from .options import CancelOn, Timeouts
from .step import Step, SyncStep
from .triggers import TriggerCron, TriggerEvent

__all__ = [
    "CancelOn",
    "Context",
    "Event",
    "FetchResponse",
    "Function",
    "FunctionOptions",
    "RetryPolicy",
    "ServeHandler",
    "ServeResponse",
    "Step",
    "StepInterrupt",
    "Stepwise",
    "SyncContext",
    "SyncStep",
    "Timeouts",
    "TriggerCron",
    "TriggerEvent",
    "fetch",
]
