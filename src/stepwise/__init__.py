"""Stepwise: durable execution for Python, speaking the Inngest protocol."""

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

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ConfigError",
    "NonRetriableError",
    "RegistrationError",
    "RetryAfterError",
    "SendEventError",
    "StepError",
    "StepwiseError",
    "__version__",
]
