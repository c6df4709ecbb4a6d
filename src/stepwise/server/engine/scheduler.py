"""From stored events to the runs they start."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...protocol import DurationError, new_ulid, parse_duration
from .. import expr
from ..store.records import (
    Batch,
    Debounce,
    EventRecord,
    Ingest,
    JobKind,
    NewJob,
    NewRun,
    RateLimit,
    Throttle,
)
from .pauses import cancel_pauses
from .registry import FunctionSpec, Registry

log = logging.getLogger("stepwise.scheduler")


class Scheduler:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def plan(self, events: Iterable[EventRecord], now: int) -> Ingest:
        """The runs ``events`` start: one per (event, function), however many triggers match."""
        events = list(events)
        runs: list[NewRun] = []
        for event in events:
            started: set[str] = set()
            for spec, trigger in self.registry.triggered_by(event.name):
                if spec.id in started:
                    continue
                if trigger.expression and not self._expression_matches(
                    spec, trigger.expression, event
                ):
                    continue
                started.add(spec.id)
                runs.append(self.new_run(spec, event, now))
        return Ingest(events=events, runs=runs)

    @staticmethod
    def new_run(
        spec: FunctionSpec,
        event: EventRecord,
        now: int,
        *,
        cron: str | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        hold: bool = True,
    ) -> NewRun:
        """A run of ``spec`` for ``event``, with its cancelOn pauses and start timeout."""
        run_id = new_ulid(now)
        config = spec.record.config
        cancels = config.get("cancel")
        pauses = (
            cancel_pauses(run_id, cancels, event.to_wire(), now)
            if isinstance(cancels, list)
            else []
        )
        jobs = []
        timeouts = config.get("timeouts")
        start = timeouts.get("start") if isinstance(timeouts, dict) else None
        if isinstance(start, str) and start:
            try:
                at = now + int(parse_duration(start).total_seconds() * 1000)
            except DurationError:
                log.warning("function %s has an invalid start timeout %r", spec.slug, start)
            else:
                jobs.append(
                    NewJob(
                        run_id=run_id,
                        kind=JobKind.RUN_TIMEOUT,
                        run_at=at,
                        key=f"timeout:start:{run_id}",
                        payload={"which": "start", "timeout": start},
                    )
                )
        flow = _flow_control(spec, event.to_wire(), now)
        return NewRun(
            id=run_id,
            function_id=spec.id,
            function_slug=spec.slug,
            event_ids=(event.internal_id,),
            # The function's idempotency expression, else the user's event id, else the
            # internal id (stable across a retried send with the same seed).
            idempotency_key=idempotency_key or flow.idempotency_key or event.id,
            created_at=now,
            cron=cron,
            correlation_id=correlation_id,
            pauses=tuple(pauses),
            jobs=tuple(jobs),
            rate_limit=flow.rate_limit,
            singleton_key=flow.singleton_key,
            singleton_cancels=flow.singleton_cancels,
            start_at=flow.start_at,
            concurrency=flow.concurrency,
            run_concurrency=flow.run_concurrency,
            throttle=flow.throttle,
            # ``hold=False`` when a debounce or batch releases the run it held.
            debounce=flow.debounce if hold else None,
            batch=flow.batch if hold else None,
        )

    def _expression_matches(self, spec: FunctionSpec, expression: str, event: EventRecord) -> bool:
        try:
            return expr.evaluate(expression, {"event": event.to_wire()}) is True
        except expr.ExpressionError as exc:
            log.warning(
                "trigger expression of %s failed on event %s: %s", spec.slug, event.internal_id, exc
            )
            return False


# Priority factors are clamped to 12 hours either way, as the reference does.
MAX_PRIORITY_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class _Flow:
    idempotency_key: str | None = None
    rate_limit: RateLimit | None = None
    singleton_key: str | None = None
    singleton_cancels: bool = False
    start_at: int | None = None
    concurrency: tuple[tuple[str, int], ...] = ()
    run_concurrency: tuple[tuple[str, int], ...] = ()
    throttle: Throttle | None = None
    debounce: Debounce | None = None
    batch: Batch | None = None


def _key(spec: FunctionSpec, source: object, event: dict[str, Any]) -> str | None:
    """A key expression's value as an index string; "" without an expression; None = no key."""
    if not isinstance(source, str) or not source:
        return ""
    try:
        value = expr.evaluate(source, {"event": event})
    except expr.ExpressionError as exc:
        log.warning("key expression of %s failed, using the function-wide key: %s", spec.slug, exc)
        return ""
    if value is False:
        return None  # the reference: a key that evaluates to false opts the event out
    return expr.index_value(value)


def _flow_control(spec: FunctionSpec, event: dict[str, Any], now: int) -> _Flow:
    config = spec.record.config
    idempotency_key = None
    idempotency = config.get("idempotency")
    if isinstance(idempotency, str) and idempotency:
        value = _key(spec, idempotency, event)
        if value is not None:
            idempotency_key = f"idempotency:{value}"
    rate_limit = None
    rate = config.get("rateLimit")
    if (
        isinstance(rate, dict)
        and isinstance(rate.get("limit"), int)
        and isinstance(rate.get("period"), str)
    ):
        key = _key(spec, rate.get("key"), event)
        try:
            period_ms = int(parse_duration(rate["period"]).total_seconds() * 1000)
        except DurationError:
            period_ms = 0
        if key is not None and rate["limit"] >= 1 and period_ms > 0:
            rate_limit = RateLimit(key=f"{spec.id}:{key}", limit=rate["limit"], period_ms=period_ms)
    singleton_key = None
    singleton_cancels = False
    singleton = config.get("singleton")
    if isinstance(singleton, dict) and singleton.get("mode", "skip") in ("skip", "cancel"):
        singleton_key = _key(spec, singleton.get("key"), event)
        singleton_cancels = singleton.get("mode") == "cancel"
    start_at = None
    priority = config.get("priority")
    if isinstance(priority, dict) and isinstance(priority.get("run"), str):
        try:
            factor = expr.evaluate(priority["run"], {"event": event})
        except expr.ExpressionError as exc:
            log.warning("priority expression of %s failed: %s", spec.slug, exc)
            factor = 0
        if isinstance(factor, int | float) and not isinstance(factor, bool):
            # A higher factor makes the run due earlier, so it starts ahead of the backlog.
            start_at = now - int(max(-MAX_PRIORITY_S, min(MAX_PRIORITY_S, factor)) * 1000)
    return _Flow(
        idempotency_key,
        rate_limit,
        singleton_key,
        singleton_cancels,
        start_at,
        _concurrency(spec, config.get("concurrency"), event),
        _concurrency(spec, config.get("concurrency"), event, level="fn"),
        _throttle(spec, config.get("throttle"), event),
        _debounce(spec, config.get("debounce"), event),
        _batch(spec, config.get("batchEvents"), event),
    )


def _ms(value: object) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return int(parse_duration(value).total_seconds() * 1000)
    except DurationError:
        return None


def _debounce(spec: FunctionSpec, raw: object, event: dict[str, Any]) -> Debounce | None:
    if not isinstance(raw, dict):
        return None
    period = _ms(raw.get("period"))
    value = _key(spec, raw.get("key"), event)
    if period is None or period <= 0 or value is None:
        return None
    return Debounce(key=f"{spec.id}:{value}", period_ms=period, timeout_ms=_ms(raw.get("timeout")))


def _batch(spec: FunctionSpec, raw: object, event: dict[str, Any]) -> Batch | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("maxSize"), int):
        return None
    condition = raw.get("if")
    if isinstance(condition, str) and condition and not expr.matches(condition, {"event": event}):
        return None  # events that fail the batch's condition run on their own, at once
    timeout = _ms(raw.get("timeout"))
    value = _key(spec, raw.get("key"), event)
    if timeout is None or value is None or raw["maxSize"] < 1:
        return None
    return Batch(key=f"{spec.id}:{value}", max_size=raw["maxSize"], timeout_ms=timeout)


def _concurrency_limits(raw: object, level: str) -> list[dict[str, Any]]:
    """Limits from any of the config's forms: int, object, list, or {"fn": [...], "step": [...]}.

    ``level`` "step" gives the limits on steps executing; "fn" the run-level ones (only
    the {"fn": [...]} form has any, and only one counts, as the reference allows).
    """
    split = isinstance(raw, dict) and ("step" in raw or "fn" in raw)
    if level == "fn":
        return (
            _concurrency_limits(raw.get("fn"), "step")[:1]
            if split and isinstance(raw, dict)
            else []
        )
    if isinstance(raw, bool):
        return []
    if isinstance(raw, int):
        return [{"limit": raw}]
    if isinstance(raw, dict):
        raw = (raw.get("step") or []) if split else [raw]
    if not isinstance(raw, list):
        return []
    return [
        c
        for c in raw[:2]
        if isinstance(c, dict) and isinstance(c.get("limit"), int) and c["limit"] >= 1
    ]


def _concurrency(
    spec: FunctionSpec, raw: object, event: dict[str, Any], *, level: str = "step"
) -> tuple[tuple[str, int], ...]:
    limits = []
    for c in _concurrency_limits(raw, level):
        key_expr = c.get("key") if isinstance(c.get("key"), str) else ""
        value = _key(spec, key_expr, event)
        if value is None:
            continue
        scope = c.get("scope") or "fn"
        # Function scope counts this function's steps; env and account scopes share a key
        # (expression and value) with every function that declares the same one.
        owner = spec.id if scope == "fn" else scope
        limits.append((f"{level}:{owner}|{key_expr}|{value}", int(c["limit"])))
    return tuple(limits)


def _throttle(spec: FunctionSpec, raw: object, event: dict[str, Any]) -> Throttle | None:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("limit"), int)
        or not isinstance(raw.get("period"), str)
    ):
        return None
    try:
        period_ms = int(parse_duration(raw["period"]).total_seconds() * 1000)
    except DurationError:
        return None
    value = _key(spec, raw.get("key"), event)
    burst_raw = raw.get("burst")
    burst = burst_raw if isinstance(burst_raw, int) and not isinstance(burst_raw, bool) else 0
    if value is None or raw["limit"] < 1 or period_ms <= 0:
        return None
    return Throttle(
        key=f"throttle:{spec.id}:{value}",
        limit=raw["limit"],
        period_ms=period_ms,
        burst=max(0, burst),
    )
