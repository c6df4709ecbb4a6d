"""An example Stepwise app: an order workflow with steps, a retry, a sleep and an event.

Run it beside `stepwise dev`:

    stepwise dev -u http://127.0.0.1:8000/api/inngest
    INNGEST_DEV=1 python examples/app.py
    stepwise send shop/order.placed --data '{"order_id": "A-1", "items": 3}'
"""

from __future__ import annotations

import os
import random
from typing import Any

import uvicorn

import stepwise
from stepwise.adapters.starlette import app as stepwise_app

client = stepwise.Stepwise(app_id="shop")


@client.create_function(
    fn_id="fulfil-order",
    name="Fulfil an order",
    trigger=stepwise.TriggerEvent(event="shop/order.placed"),
    retries=3,
)
async def fulfil_order(ctx: stepwise.Context) -> dict[str, Any]:
    order_id = ctx.event.data["order_id"]
    ctx.logger.info("fulfilling order %s", order_id)  # logged once, not on every replay

    reservation = await ctx.step.run(
        "reserve-stock", reserve_stock, order_id, ctx.event.data["items"]
    )

    def charge_card() -> dict[str, Any]:
        # The payment provider times out on the first attempt; the step is retried on its own,
        # and "reserve-stock" above is not run again.
        if ctx.attempt == 0:
            raise TimeoutError("payment provider did not answer")
        return {"charge_id": f"ch_{random.randint(1000, 9999)}", "attempt": ctx.attempt}

    charge = await ctx.step.run("charge-card", charge_card)
    await ctx.step.sleep("wait-for-courier", "2s")
    shipment = await ctx.step.run("ship", lambda: {"tracking": f"TRK-{order_id}"})
    await ctx.step.send_event(
        "announce-shipment",
        stepwise.Event(name="shop/order.shipped", data={"order_id": order_id, **shipment}),
    )
    return {
        "order_id": order_id,
        "reservation": reservation,
        "charge": charge,
        "shipment": shipment,
    }


def reserve_stock(order_id: str, items: int) -> dict[str, Any]:
    return {"order_id": order_id, "reserved": items}


app = stepwise_app(client, [fulfil_order])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning"
    )
