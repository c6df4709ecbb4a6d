"""Flow-control options of a function: concurrency, throttling, rate limits, idempotency,
debounce, batching, priority and singletons (server reference §2.3).

Each option object validates itself when built and renders the function-config shape the
protocol carries (protocol reference §2.2 item 4); unset optional fields are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar

from ..errors import ConfigError
from ..protocol import format_duration
from .options import Duration, duration_to_delta

ConcurrencyScope = Literal["fn", "env", "account"]
SingletonMode = Literal["skip", "cancel"]

CONCURRENCY_SCOPES: tuple[str, ...] = ("fn", "env", "account")
SINGLETON_MODES: tuple[str, ...] = ("skip", "cancel")
MAX_CONCURRENCY_LIMITS = 2
MAX_RATE_LIMIT_PERIOD = timedelta(hours=24)
MIN_DEBOUNCE_PERIOD = timedelta(seconds=1)
MAX_DEBOUNCE_PERIOD = timedelta(days=7)
MIN_BATCH_SIZE = 2
MIN_BATCH_TIMEOUT = timedelta(seconds=1)
MAX_BATCH_TIMEOUT = timedelta(seconds=60)


def _count(value: object, *, what: str, minimum: int = 1) -> int:
    """An ``int`` of at least ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be an int, not {value!r}")
    if value < minimum:
        raise ConfigError(f"{what} must be at least {minimum}, not {value}")
    return value


def _expression(value: object, *, what: str) -> str:
    """A non-empty CEL expression."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty CEL expression, not {value!r}")
    return value


def _period(
    value: Duration,
    *,
    what: str,
    minimum: timedelta | None = None,
    maximum: timedelta | None = None,
) -> str:
    """A positive duration within ``minimum``..``maximum``, as the protocol's string."""
    delta = duration_to_delta(value, what=what)
    if delta <= timedelta(0):
        raise ConfigError(f"{what} must be longer than zero")
    if minimum is not None and delta < minimum:
        raise ConfigError(f"{what} must be at least {format_duration(minimum)}")
    if maximum is not None and delta > maximum:
        raise ConfigError(f"{what} must be at most {format_duration(maximum)}")
    return format_duration(delta)


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most ``limit`` steps of this function executing at once.

    With ``key`` (a CEL expression over ``event``) each evaluated key gets its own limit.
    ``scope`` shares the limit across the function (``"fn"``), the environment (``"env"``)
    or the account (``"account"``); the last two need a ``key``.
    """

    limit: int
    key: str | None = None
    scope: ConcurrencyScope = "fn"

    def __post_init__(self) -> None:
        self.to_wire()

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"limit": _count(self.limit, what="Concurrency limit")}
        if self.key is not None:
            out["key"] = _expression(self.key, what="Concurrency key")
        if self.scope not in CONCURRENCY_SCOPES:
            raise ConfigError(
                f"Concurrency scope must be 'fn', 'env' or 'account', not {self.scope!r}"
            )
        if self.scope != "fn":
            if self.key is None:
                raise ConfigError(f"a Concurrency limit with scope {self.scope!r} needs a key")
            out["scope"] = self.scope
        return out


@dataclass(frozen=True, slots=True)
class Throttle:
    """Start at most ``limit`` runs per ``period`` (plus ``burst``); later runs wait, never drop."""

    limit: int
    period: Duration
    burst: int | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        self.to_wire()

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "limit": _count(self.limit, what="Throttle limit"),
            "period": _period(self.period, what="Throttle period"),
        }
        if self.burst is not None:
            out["burst"] = _count(self.burst, what="Throttle burst")
        if self.key is not None:
            out["key"] = _expression(self.key, what="Throttle key")
        return out


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Start at most ``limit`` runs per ``period`` (up to 24 h); events over it are dropped."""

    limit: int
    period: Duration
    key: str | None = None

    def __post_init__(self) -> None:
        self.to_wire()

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "limit": _count(self.limit, what="RateLimit limit"),
            "period": _period(self.period, what="RateLimit period", maximum=MAX_RATE_LIMIT_PERIOD),
        }
        if self.key is not None:
            out["key"] = _expression(self.key, what="RateLimit key")
        return out


@dataclass(frozen=True, slots=True)
class Debounce:
    """Start one run ``period`` (1 s to 7 d) after the last event; ``timeout`` caps the delay."""

    period: Duration
    key: str | None = None
    timeout: Duration | None = None

    def __post_init__(self) -> None:
        self.to_wire()

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "period": _period(
                self.period,
                what="Debounce period",
                minimum=MIN_DEBOUNCE_PERIOD,
                maximum=MAX_DEBOUNCE_PERIOD,
            )
        }
        if self.key is not None:
            out["key"] = _expression(self.key, what="Debounce key")
        if self.timeout is not None:
            out["timeout"] = _period(self.timeout, what="Debounce timeout")
        return out


@dataclass(frozen=True, slots=True)
class Batch:
    """Start one run for up to ``max_size`` events (at least 2), or after ``timeout`` (1-60 s).

    ``key`` groups events into separate batches; events failing ``if_`` run unbatched.
    """

    max_size: int
    timeout: Duration
    key: str | None = None
    if_: str | None = None

    def __post_init__(self) -> None:
        self.to_wire()

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "maxSize": _count(self.max_size, what="Batch max_size", minimum=MIN_BATCH_SIZE),
            "timeout": _period(
                self.timeout,
                what="Batch timeout",
                minimum=MIN_BATCH_TIMEOUT,
                maximum=MAX_BATCH_TIMEOUT,
            ),
        }
        if self.key is not None:
            out["key"] = _expression(self.key, what="Batch key")
        if self.if_ is not None:
            out["if"] = _expression(self.if_, what="Batch if_")
        return out


@dataclass(frozen=True, slots=True)
class Priority:
    """``run``: a CEL expression over ``event`` giving seconds to move a run ahead (±12 h)."""

    run: str

    def __post_init__(self) -> None:
        self.to_wire()

    def to_wire(self) -> dict[str, str]:
        return {"run": _expression(self.run, what="Priority run")}


@dataclass(frozen=True, slots=True)
class Singleton:
    """At most one run at a time (per evaluated ``key``).

    ``mode="skip"`` skips a new run while one is running; ``"cancel"`` cancels the running
    one and starts the new one.
    """

    key: str | None = None
    mode: SingletonMode = "skip"

    def __post_init__(self) -> None:
        self.to_wire()

    def to_wire(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.key is not None:
            out["key"] = _expression(self.key, what="Singleton key")
        if self.mode not in SINGLETON_MODES:
            raise ConfigError(f"Singleton mode must be 'skip' or 'cancel', not {self.mode!r}")
        out["mode"] = self.mode
        return out


def normalize_concurrency(
    concurrency: int | Concurrency | Sequence[int | Concurrency] | None,
) -> tuple[Concurrency, ...] | None:
    """``concurrency=`` as a tuple of at most two limits (an int is a plain function limit)."""
    if concurrency is None:
        return None
    if isinstance(concurrency, int | Concurrency):
        items: tuple[object, ...] = (concurrency,)
    elif isinstance(concurrency, list | tuple):
        items = tuple(concurrency)
    else:
        raise ConfigError(
            f"concurrency takes an int, a Concurrency or a list of them, not {concurrency!r}"
        )
    limits: list[Concurrency] = []
    for item in items:
        if isinstance(item, Concurrency):
            limits.append(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            limits.append(Concurrency(limit=item))
        else:
            raise ConfigError(f"concurrency takes ints or Concurrency objects, not {item!r}")
    if len(limits) > MAX_CONCURRENCY_LIMITS:
        raise ConfigError(f"a function takes at most {MAX_CONCURRENCY_LIMITS} concurrency limits")
    return tuple(limits) or None


_Option = TypeVar("_Option")


def check_option(value: _Option | None, kind: type[_Option], *, what: str) -> _Option | None:
    """``value`` if it is ``None`` or a ``kind``; ``ConfigError`` otherwise."""
    if value is not None and not isinstance(value, kind):
        raise ConfigError(f"{what} takes a {kind.__name__} object, not {value!r}")
    return value


def normalize_idempotency(idempotency: str | None) -> str | None:
    if idempotency is None:
        return None
    return _expression(idempotency, what="idempotency")
