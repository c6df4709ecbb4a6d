"""The functions the server knows, indexed for matching events to triggers."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from ...protocol import DEFAULT_RETRIES, MAX_RETRIES
from ...protocol.events import RESERVED_PREFIX
from ..store.records import FunctionRecord


@dataclass(frozen=True, slots=True)
class EventTrigger:
    event: str
    expression: str | None


@dataclass(frozen=True, slots=True)
class CronTrigger:
    cron: str
    jitter: str | None


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    record: FunctionRecord
    event_triggers: tuple[EventTrigger, ...]
    cron_triggers: tuple[CronTrigger, ...]
    max_attempts: int

    @property
    def slug(self) -> str:
        return self.record.slug

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def url(self) -> str:
        return self.record.url


def retries_of(config: dict[str, Any]) -> int:
    """Retries (not attempts) from a function config: the step's, else the function's."""
    step = (config.get("steps") or {}).get("step") or {}
    retries = r.get("attempts") if isinstance(r := step.get("retries"), dict) else None
    if retries is None:
        retries = config.get("retries")
    if not isinstance(retries, int) or isinstance(retries, bool):
        retries = DEFAULT_RETRIES
    return max(0, min(retries, MAX_RETRIES))


def spec_from_record(record: FunctionRecord) -> FunctionSpec:
    events: list[EventTrigger] = []
    crons: list[CronTrigger] = []
    for trigger in record.config.get("triggers") or []:
        if trigger.get("event"):
            events.append(EventTrigger(trigger["event"], trigger.get("expression") or None))
        elif trigger.get("cron"):
            crons.append(CronTrigger(trigger["cron"], trigger.get("jitter") or None))
    return FunctionSpec(
        record=record,
        event_triggers=tuple(events),
        cron_triggers=tuple(crons),
        max_attempts=retries_of(record.config) + 1,
    )


class Registry:
    """Function specs by slug, with an index from event name to the functions it triggers."""

    def __init__(self) -> None:
        self._by_slug: dict[str, FunctionSpec] = {}
        self._by_id: dict[str, FunctionSpec] = {}
        self._by_event: dict[str, list[tuple[FunctionSpec, EventTrigger]]] = {}
        self._wildcards: list[tuple[str, FunctionSpec, EventTrigger]] = []

    def replace_all(self, records: list[FunctionRecord]) -> None:
        by_slug = {r.slug: spec_from_record(r) for r in records}
        by_event: dict[str, list[tuple[FunctionSpec, EventTrigger]]] = {}
        wildcards: list[tuple[str, FunctionSpec, EventTrigger]] = []
        for spec in by_slug.values():
            for trigger in spec.event_triggers:
                if "*" in trigger.event:
                    wildcards.append((trigger.event, spec, trigger))
                else:
                    by_event.setdefault(trigger.event, []).append((spec, trigger))
        # Swap whole maps so readers never see a half-built index.
        by_id = {spec.id: spec for spec in by_slug.values()}
        self._by_slug, self._by_id, self._by_event, self._wildcards = (
            by_slug,
            by_id,
            by_event,
            wildcards,
        )

    def get(self, slug: str) -> FunctionSpec | None:
        return self._by_slug.get(slug)

    def by_id(self, function_id: str) -> FunctionSpec | None:
        return self._by_id.get(function_id)

    def all(self) -> list[FunctionSpec]:
        return list(self._by_slug.values())

    def triggered_by(self, event_name: str) -> list[tuple[FunctionSpec, EventTrigger]]:
        """Every (function, trigger) whose event pattern matches ``event_name``."""
        found = list(self._by_event.get(event_name, ()))
        internal = event_name.startswith(RESERVED_PREFIX)
        for pattern, spec, trigger in self._wildcards:
            # "*" or "app/*" means the app's own events; internal events need an
            # explicit "inngest/..." pattern, or a catch-all would trigger on its own finish.
            if internal and not pattern.startswith(RESERVED_PREFIX):
                continue
            if fnmatch.fnmatchcase(event_name, pattern):
                found.append((spec, trigger))
        return found
