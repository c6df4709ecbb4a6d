"""Every exception Stepwise raises descends from one root.

    StepwiseError
     ├── NonRetriableError        user code: fail now, no more attempts
     ├── RetryAfterError          user code: retry, but not before a given time
     ├── StepError                a step failed for good (raised into user code on replay)
     │    └── InferenceError      a step.ai.infer call failed: the provider's status and body
     ├── SendEventError           the event API refused or never answered a send
     ├── RegistrationError        syncing an app with the server failed
     ├── ConfigError              a client or function is configured wrongly
     └── ApiError                 an HTTP error with a stable ``code`` (server and SDK endpoints)

Control-flow signals used by the SDK derive from ``BaseException`` (see ``stepwise.sdk``)
so that a user's ``except Exception`` cannot swallow them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


class StepwiseError(Exception):
    """Root of every Stepwise exception."""


class NonRetriableError(StepwiseError):
    """Raise from a function or step to fail it at once, without further attempts."""

    def __init__(self, message: str = "", *, cause: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause


class RetryAfterError(StepwiseError):
    """Raise to be retried no sooner than ``retry_after`` (seconds, timedelta or datetime)."""

    def __init__(
        self,
        message: str,
        retry_after: int | float | timedelta | datetime,
        *,
        cause: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        if isinstance(retry_after, datetime):
            at = retry_after if retry_after.tzinfo else retry_after.replace(tzinfo=UTC)
        elif isinstance(retry_after, timedelta):
            at = datetime.now(UTC) + retry_after
        else:
            at = datetime.now(UTC) + timedelta(seconds=float(retry_after))
        self.retry_at: datetime = at


class StepError(StepwiseError):
    """A step failed for good; raised where the step is awaited on every later replay."""

    def __init__(self, message: str, *, name: str = "Error", stack: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.stack = stack


class InferenceError(StepError):
    """A ``step.ai.infer`` call failed for good.

    ``status`` and ``body`` are the provider's answer (the body as JSON when it was JSON);
    both are None when no answer came (unreachable, timed out, refused by the server).
    """

    def __init__(
        self,
        message: str,
        *,
        name: str = "AIGatewayError",
        stack: str | None = None,
        status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, name=name, stack=stack)
        self.status = status
        self.body = body


class SendEventError(StepwiseError):
    """Sending events failed after every retry, or the event API refused them."""


class RegistrationError(StepwiseError):
    """Syncing an app's functions with the server failed."""


class ConfigError(StepwiseError):
    """A client, function or server is configured wrongly."""


class ApiError(StepwiseError):
    """An error that crosses HTTP: a status and a stable machine-readable ``code``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        # HTTP headers the error response carries (Retry-After on a 429, ...).
        self.headers: dict[str, str] = {}

    def to_body(self) -> dict[str, Any]:
        # ``status`` in the body too: the JS SDK reads it from there, not from HTTP.
        return {"error": self.message, "code": self.code, "status": self.status, **self.extra}
