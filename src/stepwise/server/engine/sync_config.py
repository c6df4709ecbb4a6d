"""What an app's sync carries: its name and function configs, checked, then stored.

Both ways an app syncs end here: its own ``POST /fn/register`` (out-of-band) and its
answer to the server's PUT (in-band). A config the server cannot run is refused with an
``ApiError`` whose message says which function and which field.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from ...errors import ApiError
from ...protocol import DurationError, parse_duration, parse_timestamp
from ..expr import ExpressionError, check
from ..store.records import AppRecord, AppSyncRecord
from .cron import next_cron_ms
from .engine import Engine

MAX_TRIGGERS = 10


def invalid_app(message: str, code: str = "invalid_app") -> ApiError:
    return ApiError(400, code, message)


def check_url(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid_app(f"{where} must be a non-empty URL")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise invalid_app(f"{where} is not a valid URL: {value!r}") from None
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise invalid_app(f"{where} is not an absolute http(s) URL: {value!r}")
    return value


def validate_function(raw: object, index: int) -> dict[str, Any]:
    where = f"functions[{index}]"
    if not isinstance(raw, dict):
        raise invalid_app(f"{where} must be an object", "invalid_function")
    fn_id = raw.get("id")
    if not isinstance(fn_id, str) or not fn_id:
        raise invalid_app(f"{where}.id must be a non-empty string", "invalid_function")
    if raw.get("name") is not None and not isinstance(raw.get("name"), str):
        raise invalid_app(f"{where}.name must be a string", "invalid_function")
    triggers = raw.get("triggers")
    if triggers is None:
        triggers = []
    if not isinstance(triggers, list):
        raise invalid_app(f"{where}.triggers must be a list", "invalid_function")
    if len(triggers) > MAX_TRIGGERS:
        raise invalid_app(
            f"function {fn_id!r} has {len(triggers)} triggers; the limit is {MAX_TRIGGERS}",
            "too_many_triggers",
        )
    for t_index, trigger in enumerate(triggers):
        t_where = f"function {fn_id!r} trigger {t_index}"
        if not isinstance(trigger, dict):
            raise invalid_app(f"{t_where} must be an object", "invalid_trigger")
        event, cron = trigger.get("event"), trigger.get("cron")
        if event:
            if not isinstance(event, str):
                raise invalid_app(f"{t_where}: event must be a string", "invalid_trigger")
            expression = trigger.get("expression")
            if expression:
                if not isinstance(expression, str):
                    raise invalid_app(f"{t_where}: expression must be a string", "invalid_trigger")
                try:
                    check(expression)
                except ExpressionError as exc:
                    raise invalid_app(f"{t_where}: {exc}", "invalid_expression") from exc
        elif cron:
            if not isinstance(cron, str):
                raise invalid_app(f"{t_where}: cron must be a string", "invalid_trigger")
            # Schedule it once: some expressions parse but never fire (Feb 31) or name
            # an unknown time zone, and those must be refused here, not fail later.
            try:
                next_cron_ms(cron, int(time.time() * 1000))
            except (ValueError, KeyError, TypeError) as exc:
                raise invalid_app(
                    f"{t_where}: invalid cron expression {cron!r}", "invalid_cron"
                ) from exc
        else:
            raise invalid_app(f"{t_where} needs an 'event' or a 'cron'", "invalid_trigger")
    _validate_cancel_and_timeouts(raw, fn_id)
    _validate_flow_control(raw, fn_id)
    steps = raw.get("steps")
    if not isinstance(steps, dict) or not steps:
        raise invalid_app(f"function {fn_id!r} has no steps", "invalid_function")
    step = steps.get("step") or next(iter(steps.values()))
    if not isinstance(step, dict) or not isinstance(step.get("runtime"), dict):
        raise invalid_app(f"function {fn_id!r}: steps.step.runtime is required", "invalid_function")
    check_url(step["runtime"].get("url"), f"function {fn_id!r} runtime url")
    config = dict(raw)
    config["triggers"] = triggers
    config["steps"] = {"step": step}
    return config


MAX_CANCELS = 5


def _duration(value: object, where: str, code: str) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise invalid_app(f"{where} must be a duration string such as '1h'", code)
    try:
        parse_duration(value)
    except DurationError:
        try:
            parse_timestamp(value)  # a timeout may also be an RFC 3339 time
        except DurationError:
            raise invalid_app(f"{where} is not a valid duration: {value!r}", code) from None


def _validate_cancel_and_timeouts(raw: dict[str, Any], fn_id: str) -> None:
    cancels = raw.get("cancel")
    if cancels is not None:
        if not isinstance(cancels, list):
            raise invalid_app(f"function {fn_id!r}: cancel must be a list", "invalid_cancel")
        if len(cancels) > MAX_CANCELS:
            raise invalid_app(
                f"function {fn_id!r} has {len(cancels)} cancel triggers; the limit is {MAX_CANCELS}",
                "invalid_cancel",
            )
        for i, cancel in enumerate(cancels):
            where = f"function {fn_id!r} cancel {i}"
            if (
                not isinstance(cancel, dict)
                or not isinstance(cancel.get("event"), str)
                or not cancel["event"]
            ):
                raise invalid_app(f"{where} needs an 'event' name", "invalid_cancel")
            condition = cancel.get("if")
            if condition is not None:
                if not isinstance(condition, str):
                    raise invalid_app(f"{where}: 'if' must be a string", "invalid_cancel")
                try:
                    check(condition)
                except ExpressionError as exc:
                    raise invalid_app(f"{where}: {exc}", "invalid_expression") from exc
            _duration(cancel.get("timeout"), f"{where} timeout", "invalid_cancel")
    timeouts = raw.get("timeouts")
    if timeouts is not None:
        if not isinstance(timeouts, dict):
            raise invalid_app(f"function {fn_id!r}: timeouts must be an object", "invalid_timeouts")
        for key in ("start", "finish"):
            _duration(timeouts.get(key), f"function {fn_id!r} timeouts.{key}", "invalid_timeouts")


def _expression(value: object, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise invalid_app(f"{where} must be a CEL expression string", "invalid_expression")
    try:
        check(value)
    except ExpressionError as exc:
        raise invalid_app(f"{where}: {exc}", "invalid_expression") from exc


def _validate_flow_control(raw: dict[str, Any], fn_id: str) -> None:
    """The options decided when a run is created; the reference's types and bounds."""
    where = f"function {fn_id!r}"
    _expression(raw.get("idempotency"), f"{where} idempotency")
    rate = raw.get("rateLimit")
    if rate is not None:
        limit = rate.get("limit") if isinstance(rate, dict) else None
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise invalid_app(
                f"{where} rateLimit.limit must be an integer of at least 1", "invalid_rate_limit"
            )
        _duration(rate.get("period"), f"{where} rateLimit.period", "invalid_rate_limit")
        if (
            not isinstance(rate.get("period"), str)
            or parse_duration(rate["period"]).total_seconds() > 86400
        ):
            raise invalid_app(
                f"{where} rateLimit.period must be a duration of at most 24h", "invalid_rate_limit"
            )
        _expression(rate.get("key"), f"{where} rateLimit.key")
    singleton = raw.get("singleton")
    if singleton is not None:
        if not isinstance(singleton, dict) or singleton.get("mode", "skip") not in (
            "skip",
            "cancel",
        ):
            raise invalid_app(
                f"{where} singleton.mode must be 'skip' or 'cancel'", "invalid_singleton"
            )
        _expression(singleton.get("key"), f"{where} singleton.key")
    priority = raw.get("priority")
    if priority is not None:
        if not isinstance(priority, dict):
            raise invalid_app(
                f"{where} priority must be an object with a 'run' expression", "invalid_priority"
            )
        _expression(priority.get("run"), f"{where} priority.run")


def lower_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """Keys matched as Go servers match them, without case (the Python SDK sends
    ``appname`` and ``deploy_type``)."""
    return {k.lower().replace("_", ""): v for k, v in raw.items()}


async def record_sync(engine: Engine, url: str, *, error: str | None, app_name: str | None) -> None:
    await engine.store.record_app_sync(
        AppSyncRecord(
            url=url,
            attempted_at=int(time.time() * 1000),
            ok=error is None,
            error=error,
            app_name=app_name or None,
        )
    )


async def sync_app(engine: Engine, fields: dict[str, Any], url: str) -> tuple[AppRecord, bool]:
    app_name = fields.get("appname")
    if not isinstance(app_name, str) or not app_name.strip():
        raise invalid_app("appName is required")
    functions_raw = fields.get("functions") or []
    if not isinstance(functions_raw, list):
        raise invalid_app("functions must be a list")
    functions = [validate_function(f, i) for i, f in enumerate(functions_raw)]
    seen: set[str] = set()
    for fn in functions:
        if fn["id"] in seen:
            raise invalid_app(f"function id {fn['id']!r} appears twice", "duplicate_function")
        seen.add(fn["id"])
    sdk = fields.get("sdk") if isinstance(fields.get("sdk"), str) else ""
    framework = fields.get("framework") if isinstance(fields.get("framework"), str) else ""
    checksum_source = orjson.dumps(
        {"url": url, "app": app_name, "functions": functions}, option=orjson.OPT_SORT_KEYS
    )
    return await engine.sync_app(
        name=app_name,
        url=url,
        sdk=str(sdk),
        framework=str(framework),
        functions=functions,
        checksum_source=checksum_source,
    )
