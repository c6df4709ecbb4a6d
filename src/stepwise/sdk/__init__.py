"""The SDK: client, functions, step tools, and the framework-agnostic serve handler."""

from .checkpoint import CheckpointConfig
from .client import RetryPolicy, Stepwise
from .context import Context, SyncContext
from .defer import Defer, DeferHandle, Parent
from .event import Event
from .execution import StepInterrupt
from .flow import Batch, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle
from .function import Function, FunctionOptions
from .gateway import FetchResponse, fetch
from .handler import ServeHandler, ServeResponse
from .logger import LoggerMiddleware
from .middleware import (
    Dependencies,
    Deps,
    FunctionRun,
    Middleware,
    Output,
    RunInput,
    SendInput,
    SendOutput,
    StepInfo,
    StepMemo,
)
from .options import CancelOn, Timeouts
from .step import Step, SyncStep
from .triggers import TriggerCron, TriggerEvent

__all__ = [
    "Batch",
    "CancelOn",
    "CheckpointConfig",
    "Concurrency",
    "Context",
    "Debounce",
    "Defer",
    "DeferHandle",
    "Dependencies",
    "Deps",
    "Event",
    "FetchResponse",
    "Function",
    "FunctionOptions",
    "FunctionRun",
    "LoggerMiddleware",
    "Middleware",
    "Output",
    "Parent",
    "Priority",
    "RateLimit",
    "RetryPolicy",
    "RunInput",
    "SendInput",
    "SendOutput",
    "ServeHandler",
    "ServeResponse",
    "Singleton",
    "Step",
    "StepInfo",
    "StepInterrupt",
    "StepMemo",
    "Stepwise",
    "SyncContext",
    "SyncStep",
    "Throttle",
    "Timeouts",
    "TriggerCron",
    "TriggerEvent",
    "fetch",
]
