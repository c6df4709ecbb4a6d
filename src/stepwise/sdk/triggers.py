"""What starts a function: an event (optionally filtered) or a cron schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

MAX_TRIGGERS = 10


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """Run on every event named ``event`` for which the CEL ``expression`` (if any) holds."""

    event: str
    expression: str | None = None

    def __post_init__(self) -> None:
        if not self.event:
            raise ConfigError("TriggerEvent needs an event name")

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event}
        if self.expression:
            out["expression"] = self.expression
        return out


@dataclass(frozen=True, slots=True)
class TriggerCron:
    """Run on a cron schedule; ``jitter`` (a duration string) spreads the start."""

    cron: str
    jitter: str | None = None

    def __post_init__(self) -> None:
        if not self.cron:
            raise ConfigError("TriggerCron needs a cron expression")

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cron": self.cron}
        if self.jitter:
            out["jitter"] = self.jitter
        return out


Trigger = TriggerEvent | TriggerCron


def normalize_triggers(
    trigger: Trigger | list[Trigger] | tuple[Trigger, ...],
) -> tuple[Trigger, ...]:
    triggers = (trigger,) if isinstance(trigger, TriggerEvent | TriggerCron) else tuple(trigger)
    if not triggers:
        raise ConfigError("a function needs at least one trigger")
    if len(triggers) > MAX_TRIGGERS:
        raise ConfigError(f"a function takes at most {MAX_TRIGGERS} triggers")
    for item in triggers:
        if not isinstance(item, TriggerEvent | TriggerCron):
            raise ConfigError(f"not a trigger: {item!r}")
    return triggers
