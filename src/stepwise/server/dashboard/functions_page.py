"""The Functions pages: every function with its configuration told in words, and one
function's page with its runs charted and a form that invokes it.

The configuration is read from what the SDK sent at sync (the function config JSON, whose
keys are the wire names: ``rateLimit``, ``batchEvents``, ``cancel``...); an option this
page does not know is still in the raw JSON folded below. The chart's numbers are the
JSON of ``GET /v1/functions/{slug}/metrics``, which the page also polls to keep it current.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from ..api.functions import stats_json
from ..api.rest import iso
from ..engine.registry import retries_of
from ..store.records import FunctionRecord, RunFilter
from .pages import _store, page, render, shown_status
from .values import pretty

RECENT_RUNS = 20


@dataclass(frozen=True, slots=True)
class Setting:
    """One line of a function's configuration, for a person."""

    label: str
    text: Markup


def _code(value: Any) -> Markup:
    return Markup("<code>{}</code>").format(value)


def _per_key(option: dict[str, Any]) -> Markup:
    key = option.get("key")
    return Markup(" per {}").format(_code(key)) if key else Markup("")


def _count(n: Any, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def trigger_texts(config: dict[str, Any]) -> list[Markup]:
    texts = []
    for trigger in config.get("triggers") or []:
        if trigger.get("event"):
            text = Markup("event {}").format(_code(trigger["event"]))
            if trigger.get("expression"):
                text += Markup(" if {}").format(_code(trigger["expression"]))
        elif trigger.get("cron"):
            text = Markup("cron {}").format(_code(trigger["cron"]))
            if trigger.get("jitter"):
                text += Markup(", jitter up to {}").format(trigger["jitter"])
        else:
            continue
        texts.append(text)
    return texts


def _concurrency(limits: Any, unit: str) -> list[Markup]:
    out = []
    for limit in limits if isinstance(limits, list) else []:
        if not isinstance(limit, dict):
            continue
        scope = limit.get("scope")
        text = Markup("at most {} at once").format(_count(limit.get("limit"), unit, unit + "s"))
        text += _per_key(limit)
        if scope in ("env", "account"):
            text += Markup(", shared across the {}").format(
                "environment" if scope == "env" else "account"
            )
        out.append(text)
    return out


def settings(config: dict[str, Any]) -> list[Setting]:
    """The function's flow control, retries, cancellation and timeouts, in words."""
    out: list[Setting] = []

    def add(label: str, text: Markup) -> None:
        out.append(Setting(label, text))

    concurrency = config.get("concurrency")
    if isinstance(concurrency, dict):  # the run-level form: {"fn": [...], "step": [...]}
        texts = _concurrency(concurrency.get("fn"), "run") + _concurrency(
            concurrency.get("step"), "step"
        )
    else:
        texts = _concurrency(concurrency, "step")
    for text in texts:
        add("Concurrency", text)
    if isinstance(t := config.get("throttle"), dict):
        text = Markup("{} per {}").format(_count(t.get("limit"), "run", "runs"), t.get("period"))
        if t.get("burst"):
            text += Markup(" (burst {})").format(t["burst"])
        add("Throttle", text + _per_key(t) + Markup("; later runs wait their turn"))
    if isinstance(r := config.get("rateLimit"), dict):
        text = Markup("{} per {}").format(_count(r.get("limit"), "run", "runs"), r.get("period"))
        add("Rate limit", text + _per_key(r) + Markup("; events over it start no run"))
    if isinstance(d := config.get("debounce"), dict):
        text = Markup("one run {} after the last event").format(d.get("period"))
        if d.get("timeout"):
            text += Markup(" (at most {} after the first)").format(d["timeout"])
        add("Debounce", text + _per_key(d))
    if isinstance(b := config.get("batchEvents"), dict):
        text = Markup("up to {} per run, or what came within {}").format(
            _count(b.get("maxSize"), "event", "events"), b.get("timeout")
        )
        text += _per_key(b)
        if b.get("if"):
            text += Markup("; only events where {}").format(_code(b["if"]))
        add("Batching", text)
    if isinstance(p := config.get("priority"), dict) and p.get("run"):
        add("Priority", Markup("{} seconds ahead of other runs").format(_code(p["run"])))
    if isinstance(s := config.get("singleton"), dict):
        then = (
            "a new run cancels the running one"
            if s.get("mode") == "cancel"
            else "a new run is skipped while one runs"
        )
        add("Singleton", Markup("one run at a time{}; {}").format(_per_key(s), then))
    if isinstance(key := config.get("idempotency"), str) and key:
        add("Idempotency", Markup("one run per {} in 24 hours").format(_code(key)))
    retries = retries_of(config)
    add(
        "Retries",
        Markup("{} ({})").format(
            _count(retries, "retry", "retries"), _count(retries + 1, "attempt", "attempts")
        ),
    )
    for cancel in config.get("cancel") or []:
        if not isinstance(cancel, dict) or not cancel.get("event"):
            continue
        text = Markup("on event {}").format(_code(cancel["event"]))
        if cancel.get("if"):
            text += Markup(" if {}").format(_code(cancel["if"]))
        if cancel.get("timeout"):
            text += Markup(" within {}").format(cancel["timeout"])
        add("Cancel", text)
    if isinstance(timeouts := config.get("timeouts"), dict):
        if timeouts.get("start"):
            add("Timeout", Markup("cancelled if not started within {}").format(timeouts["start"]))
        if timeouts.get("finish"):
            add("Timeout", Markup("cancelled if not finished within {}").format(timeouts["finish"]))
    return out


def _row(fn: FunctionRecord, apps: dict[str, str]) -> dict[str, Any]:
    return {
        "fn": fn,
        "app": apps.get(fn.app_id, ""),
        "triggers": trigger_texts(fn.config),
        "settings": settings(fn.config),
        "config": pretty(fn.config),
    }


@page
async def functions(request: Request) -> Response:
    store = _store(request)
    apps = {a.id: a.name for a in await store.list_apps()}
    rows = [_row(fn, apps) for fn in sorted(await store.list_functions(), key=lambda f: f.slug)]
    return render(request, "functions.html", rows=rows)


@page
async def function(request: Request) -> Response:
    store = _store(request)
    slug = request.path_params["slug"]
    fn = next((f for f in await store.list_functions() if f.slug == slug), None)
    if fn is None:
        return render(request, "missing.html", status_code=404, what="function", id=slug)
    apps = {a.id: a.name for a in await store.list_apps()}
    stats = await store.function_stats(slug, int(time.time() * 1000))
    runs = await store.list_runs(RunFilter(function_slugs=(slug,)), limit=RECENT_RUNS, after=None)
    return render(
        request,
        "function.html",
        row=_row(fn, apps),
        metrics=stats_json(slug, stats),
        runs=[{"run": r, "status": shown_status(r), "created": iso(r.created_at)} for r in runs],
    )
