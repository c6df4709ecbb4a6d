"""The SDK: client, functions, step tools, and the framework-agnostic serve handler."""

from .client import RetryPolicy, Stepwise
from .context import Context, SyncContext
from .defer import Defer, DeferHandle, Parent
from .event import Event
from .execution import StepInterrupt
from .flow import Batch, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle
from .function import Function, FunctionOptions
from .gateway import FetchResponse, fetch
from .handler import ServeHandler, ServeResponse
from .options import CancelOn, Timeouts
from .step import Step, SyncStep
from .triggers import TriggerCron, TriggerEvent

__all__ = [
    "Batch",
    "CancelOn",
    "Concurrency",
    "Context",
    "Debounce",
    "Defer",
    "DeferHandle",
    "Event",
    "FetchResponse",
    "Function",
    "FunctionOptions",
    "Parent",
    "Priority",
    "RateLimit",
    "RetryPolicy",
    "ServeHandler",
    "ServeResponse",
    "Singleton",
    "Step",
    "StepInterrupt",
    "Stepwise",
    "SyncContext",
    "SyncStep",
    "Throttle",
    "Timeouts",
    "TriggerCron",
    "TriggerEvent",
    "fetch",
]
