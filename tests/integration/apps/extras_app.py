"""A Stepwise SDK app using defers, run and step metadata, and sessions.

Everything observable goes to the ledger, one JSON object a line, with its ``kind``:
``step`` (a step's code ran), ``deferred`` (a deferred run ran: its data, parents,
sessions), ``sessions`` (what a run saw as its sessions and its events' meta).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as asgi_app

SERVER = os.environ["STEPWISE_TEST_SERVER"]
LEDGER = os.environ["STEPWISE_TEST_LEDGER"]

client = stepwise.Stepwise(
    app_id="extras",
    is_production=False,
    event_key="test-event-key",
    api_base_url=SERVER,
    event_api_base_url=SERVER,
)


def record(kind: str, ctx: stepwise.Context | stepwise.SyncContext, **fields: Any) -> None:
    line = {"kind": kind, "run_id": ctx.run_id, "attempt": ctx.attempt, "t": time.time(), **fields}
    with open(LEDGER, "a") as f:
        f.write(json.dumps(line) + "\n")


# ---- defers ------------------------------------------------------------------------------


@client.create_defer(fn_id="later", retries=0)
async def later(ctx: stepwise.Context) -> str:
    record(
        "deferred",
        ctx,
        data=ctx.event.data,
        parents=[{"fn_slug": p.fn_slug, "run_id": p.run_id} for p in ctx.parents],
        sessions=ctx.sessions,
    )
    return "later done"


@client.create_function(
    fn_id="parent-completes", trigger=stepwise.TriggerEvent(event="x/defer.complete"), retries=0
)
async def parent_completes(ctx: stepwise.Context) -> int:
    ctx.defer("notify", function=later, data={"from": "complete", "n": ctx.event.data["n"]})

    def first() -> int:
        record("step", ctx, step="a")
        return int(ctx.event.data["n"]) * 2

    return await ctx.step.run("a", first)


@client.create_function(
    fn_id="parent-fails", trigger=stepwise.TriggerEvent(event="x/defer.fail"), retries=0
)
def parent_fails(ctx: stepwise.SyncContext) -> None:
    ctx.defer("notify", function=later, data={"from": "fail"})
    raise stepwise.NonRetriableError("the parent failed after deferring")


@client.create_function(
    fn_id="parent-aborts", trigger=stepwise.TriggerEvent(event="x/defer.abort"), retries=0
)
async def parent_aborts(ctx: stepwise.Context) -> str:
    dropped = ctx.defer("dropped", function=later, data={"from": "aborted"})
    ctx.defer("kept", function=later, data={"from": "kept"})
    await ctx.step.run("s", lambda: record("step", ctx, step="s"))
    dropped.abort()  # a call after the one that added it: the server aborts its record
    return "done"


@client.create_function(
    fn_id="parent-crashes", trigger=stepwise.TriggerEvent(event="x/defer.crash"), retries=2
)
async def parent_crashes(ctx: stepwise.Context) -> str:
    ctx.defer("notify", function=later, data={"from": "crash"})
    await ctx.step.run("a", lambda: record("step", ctx, step="a"))
    await ctx.step.sleep("nap", "1s")
    return "done"


# ---- metadata ----------------------------------------------------------------------------


@client.create_function(fn_id="metadata", trigger=stepwise.TriggerEvent(event="x/metadata"))
async def with_metadata(ctx: stepwise.Context) -> str:
    def work() -> str:
        ctx.metadata({"status": "checked"})
        ctx.metadata({"status": "ok", "rows": 3})  # the same kind again: replaces
        ctx.metadata({"phase": "scored"}, kind="progress", run=True)
        ctx.metadata(
            {
                "operation_name": "chat",
                "request_model": "gpt-4o-mini",
                "response_model": "gpt-4o-mini-2024-07-18",
                "input_tokens": 1000,
                "output_tokens": 500,
            },
            kind="inngest.ai",
        )
        return "worked"

    await ctx.step.run("work", work)
    await ctx.step.run("other", lambda: "no metadata")
    return ctx.run_id


# ---- sessions ----------------------------------------------------------------------------


def seen(ctx: stepwise.Context | stepwise.SyncContext, role: str) -> None:
    record(
        "sessions",
        ctx,
        role=role,
        sessions=ctx.sessions,
        metas=[e.meta for e in ctx.events],
        data=ctx.event.data,
    )


@client.create_function(
    fn_id="sessions-child", trigger=stepwise.TriggerEvent(event="x/sessions.child")
)
async def sessions_child(ctx: stepwise.Context) -> None:
    seen(ctx, f"child-{ctx.event.data['via']}")


@client.create_function(
    fn_id="sessions-invoked", trigger=stepwise.TriggerEvent(event="x/sessions.never")
)
async def sessions_invoked(ctx: stepwise.Context) -> str:
    seen(ctx, "invoked")
    return "invoked"


@client.create_function(
    fn_id="sessions-parent", trigger=stepwise.TriggerEvent(event="x/sessions.parent")
)
async def sessions_parent(ctx: stepwise.Context) -> str:
    seen(ctx, "parent")
    await ctx.step.send_event("send", {"name": "x/sessions.child", "data": {"via": "send_event"}})
    await ctx.step.send_event(
        "send-override",
        {
            "name": "x/sessions.child",
            "data": {"via": "override"},
            "meta": {"sessions": {"org": "other", "team": None}},
        },
    )

    async def bare_send() -> list[str]:
        return await client.send({"name": "x/sessions.child", "data": {"via": "client_send"}})

    await ctx.step.run("bare", bare_send)
    await ctx.step.invoke("invoke", function=sessions_invoked, data={"via": "invoke"})
    ctx.defer("deferred", function=later, data={"from": "sessions"})
    return "parent done"


@client.create_function(
    fn_id="sessions-batch",
    trigger=stepwise.TriggerEvent(event="x/sessions.batch"),
    batch_events=stepwise.Batch(max_size=2, timeout="5s"),
)
async def sessions_batch(ctx: stepwise.Context) -> int:
    seen(ctx, "batch")
    return len(ctx.events)


FUNCTIONS = [
    later,
    parent_completes,
    parent_fails,
    parent_aborts,
    parent_crashes,
    with_metadata,
    sessions_child,
    sessions_invoked,
    sessions_parent,
    sessions_batch,
]
app = asgi_app(client, FUNCTIONS)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
