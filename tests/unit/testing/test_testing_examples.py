"""Every function in examples/ runs through the test engine.

The functions are found by loading each example module and collecting its ``Function``
objects, so a new example is run here without being listed; each needs a sample event
below (the test fails until it has one).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import stepwise
from stepwise.testing import TestEngine

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

SAMPLE_EVENTS: dict[str, dict[str, Any]] = {
    "shop-fulfil-order": {"name": "shop/order.placed", "data": {"order_id": "A-1", "items": 3}},
}


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_functions() -> list[stepwise.Function]:
    found: dict[str, stepwise.Function] = {}
    for path in sorted(EXAMPLES.glob("*.py")):
        for value in vars(_load(path)).values():
            if isinstance(value, stepwise.Function):
                found[value.id] = value
    return list(found.values())


FUNCTIONS = example_functions()


def test_the_examples_have_functions() -> None:
    assert [f.id for f in FUNCTIONS] == list(SAMPLE_EVENTS)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.id)
def test_every_example_function_runs_to_completion(function: stepwise.Function) -> None:
    assert function.id in SAMPLE_EVENTS, f"add a sample event for {function.id}"
    engine = TestEngine(function, retry_interval="1s")
    run = engine.execute(SAMPLE_EVENTS[function.id])
    assert run.status == "Completed", run.error
    assert run.steps, "an example should show some steps"


def test_the_order_example_step_by_step() -> None:
    (fulfil,) = (f for f in FUNCTIONS if f.id == "shop-fulfil-order")
    engine = TestEngine(fulfil, retry_interval="1s")
    run = engine.execute(SAMPLE_EVENTS["shop-fulfil-order"])

    assert run.step_ids == [
        "reserve-stock",
        "charge-card",
        "wait-for-courier",
        "ship",
        "announce-shipment",
    ]
    assert run.result["reservation"] == {"order_id": "A-1", "reserved": 3}
    assert run.result["charge"]["attempt"] == 1  # the first attempt times out, by design
    assert engine.steps["charge-card"].calls == 2
    assert engine.steps["reserve-stock"].calls == 1
    engine.steps["reserve-stock"].assert_called_once_with("A-1", 3)
    assert [s.duration.total_seconds() for s in run.sleeps] == [2]
    assert [(e.name, e.data) for e in run.sent_events] == [
        ("shop/order.shipped", {"order_id": "A-1", "tracking": "TRK-A-1"})
    ]

    mocked = engine.execute(
        SAMPLE_EVENTS["shop-fulfil-order"], steps={"charge-card": {"charge_id": "ch_test"}}
    )
    assert mocked.result["charge"] == {"charge_id": "ch_test"}
    assert engine.steps["charge-card"].calls == 1
