"""Stepwise: durable execution for Python, speaking the Inngest protocol."""

from typing import TYPE_CHECKING

from ._version import __version__
from .errors import (
    ApiError,
    ConfigError,
    InferenceError,
    NonRetriableError,
    RegistrationError,
    RetryAfterError,
    SendEventError,
    StepError,
    StepwiseError,
)

if TYPE_CHECKING:
    from .sdk import (
        Batch,
        CancelOn,
        CheckpointConfig,
        Concurrency,
        Context,
        Debounce,
        DeferHandle,
        Dependencies,
        Deps,
        Event,
        FetchResponse,
        Function,
        FunctionRun,
        LoggerMiddleware,
        Middleware,
        Output,
        Parent,
        Priority,
        RateLimit,
        RunInput,
        SendInput,
        SendOutput,
        ServeHandler,
        Singleton,
        Step,
        StepInfo,
        StepMemo,
        Stepwise,
        SyncContext,
        SyncStep,
        Throttle,
        Timeouts,
        TriggerCron,
        TriggerEvent,
        fetch,
    )
else:
    # The SDK is loaded when one of its names is first used: the server imports this
    # package too (``stepwise.server``), and never needs the SDK (a third of a second
    # at every start).
    def __getattr__(name: str) -> object:
        # Only names not defined above reach here: those of __all__ are the SDK's.
        if name in __all__:
            from . import sdk

            value = getattr(sdk, name)
            globals()[name] = value
            return value
        raise AttributeError(f"module 'stepwise' has no attribute {name!r}")


__all__ = [
    "ApiError",
    "Batch",
    "CancelOn",
    "CheckpointConfig",
    "Concurrency",
    "ConfigError",
    "Context",
    "Debounce",
    "DeferHandle",
    "Dependencies",
    "Deps",
    "Event",
    "FetchResponse",
    "Function",
    "FunctionRun",
    "InferenceError",
    "LoggerMiddleware",
    "Middleware",
    "NonRetriableError",
    "Output",
    "Parent",
    "Priority",
    "RateLimit",
    "RegistrationError",
    "RetryAfterError",
    "RunInput",
    "SendEventError",
    "SendInput",
    "SendOutput",
    "ServeHandler",
    "Singleton",
    "Step",
    "StepError",
    "StepInfo",
    "StepMemo",
    "Stepwise",
    "StepwiseError",
    "SyncContext",
    "SyncStep",
    "Throttle",
    "Timeouts",
    "TriggerCron",
    "TriggerEvent",
    "__version__",
    "fetch",
]
