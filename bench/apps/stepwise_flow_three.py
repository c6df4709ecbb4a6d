"""The 3-step benchmark function once per flow-control option, each on its own event name.

Every limit is set high enough not to bind, so the benchmark measures what the option
costs, not how much it throttles. Batching starts one run per 10 events by design.
"""

from __future__ import annotations

import os
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as stepwise_app

client = stepwise.Stepwise(app_id="bench-flow", is_production=False)

VARIANTS: dict[str, dict[str, Any]] = {
    "none": {},
    "concurrency": {"concurrency": [stepwise.Concurrency(limit=1000, key="event.data.k")]},
    "throttle": {"throttle": stepwise.Throttle(limit=100_000, period="1s", key="event.data.k")},
    "rate_limit": {
        "rate_limit": stepwise.RateLimit(limit=100_000, period="1m", key="event.data.k")
    },
    "idempotency": {"idempotency": "event.data.i"},
    "debounce": {"debounce": stepwise.Debounce(period="1s", key="event.data.i")},
    "batch": {"batch_events": stepwise.Batch(max_size=10, timeout="1s")},
    "priority": {"priority": stepwise.Priority(run="event.data.k")},
    "singleton": {"singleton": stepwise.Singleton(key="event.data.i")},
}


def make(variant: str, options: dict[str, Any]) -> stepwise.Function:
    @client.create_function(
        fn_id=variant, trigger=stepwise.TriggerEvent(event=f"bench/flow.{variant}"), **options
    )
    async def three_steps(ctx: stepwise.Context) -> int:
        a = await ctx.step.run("a", lambda: 1)
        b = await ctx.step.run("b", lambda: a + 1)
        return await ctx.step.run("c", lambda: b + 1)

    return three_steps


app = stepwise_app(client, [make(v, o) for v, o in VARIANTS.items()])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", access_log=False
    )
