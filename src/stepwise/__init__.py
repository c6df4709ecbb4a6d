"""Stepwise: durable execution for Python, speaking the Inngest protocol."""

from ._version import __version__
from .errors import (
    ApiError,
    ConfigError,
    NonRetriableError,
    RegistrationError,
    RetryAfterError,
    SendEventError,
    StepError,
    StepwiseError,
)
from .sdk import (
    Context,
    Event,
    Function,
    ServeHandler,
    Step,
    Stepwise,
    SyncContext,
    SyncStep,
    TriggerCron,
    TriggerEvent,
)

__all__ = [
    "ApiError",
    "ConfigError",
    "Context",
    "Event",
    "Function",
    "NonRetriableError",
    "RegistrationError",
    "RetryAfterError",
    "SendEventError",
    "ServeHandler",
    "Step",
    "StepError",
    "Stepwise",
    "StepwiseError",
    "SyncContext",
    "SyncStep",
    "TriggerCron",
    "TriggerEvent",
    "__version__",
]
