"""Metadata updates (4.x reference §4): what is kept, the AI cost, each kind's latest values."""

from __future__ import annotations

from typing import Any

import pytest
from server_support import NOW

from stepwise.protocol import GeneratorOp
from stepwise.server.engine.metadata import InvalidMetadata, checked, current, estimated_cost, of_op
from stepwise.server.store.records import HistoryEntry, HistoryKind


def test_an_ai_update_gets_its_estimated_cost() -> None:
    values = {"request_model": "gpt-4o", "input_tokens": 2_000_000, "output_tokens": 100_000}
    update = checked({"kind": "inngest.ai", "values": values, "scope": "step"})
    # 2M input tokens at $2.50 and 100k output at $10 per million.
    assert update.values == {**values, "estimated_cost": 6.0}
    # A cost the SDK sent is kept; an unknown model costs 0.
    assert checked(
        {"kind": "inngest.ai", "values": {"estimated_cost": 1}, "scope": "step"}
    ).values == {"estimated_cost": 1}
    assert estimated_cost({"request_model": "my-own-model", "input_tokens": 10}) == 0.0


def test_the_longest_known_model_prefix_prices_a_call() -> None:
    mini = {"response_model": "gpt-4o-mini-2024-07-18", "input_tokens": 1_000_000}
    assert estimated_cost(mini) == 0.15
    assert estimated_cost({"response_model": "openai/gpt-4o", "output_tokens": 1_000_000}) == 10.0


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ({"kind": "inngest.secret", "values": {}, "scope": "run"}, 400),
        ({"kind": "", "values": {}, "scope": "run"}, 400),
        ({"kind": "k" * 129, "values": {}, "scope": "run"}, 400),
        ({"kind": "x", "values": [1], "scope": "run"}, 400),
        ({"kind": "x", "values": {}, "scope": "span"}, 400),
        ({"kind": "x", "values": {}, "scope": "run", "op": "append"}, 400),
        ({"kind": "x", "values": {"v": "y" * 70_000}, "scope": "run"}, 413),
    ],
)
def test_updates_the_server_will_not_keep(raw: dict[str, Any], status: int) -> None:
    with pytest.raises(InvalidMetadata) as caught:
        checked(raw)
    assert caught.value.status == status


def test_an_ops_bad_update_is_left_out_and_the_rest_kept() -> None:
    op = GeneratorOp.from_wire(
        {
            "op": "StepRun",
            "id": "h-a",
            "data": 1,
            "metadata": [
                {"kind": "inngest.nope", "scope": "step", "op": "set", "values": {}},
                {"kind": "userland.x", "scope": "run", "op": "merge", "values": {"a": 1}},
            ],
        }
    )
    [entry] = of_op(op, NOW, "a", 0)
    assert entry == HistoryEntry(
        HistoryKind.METADATA,
        NOW,
        "h-a",
        "a",
        0,
        {"metadata": {"kind": "userland.x", "scope": "run", "op": "merge", "values": {"a": 1}}},
    )


def test_the_latest_update_of_a_kind_on_a_target_is_current() -> None:
    def entry(at: int, step: str | None, scope: str, kind: str, values: Any) -> HistoryEntry:
        shown = {"kind": kind, "scope": scope, "op": "set", "values": values}
        return HistoryEntry(HistoryKind.METADATA, at, step, step, None, {"metadata": shown})

    history = [
        entry(1, "s1", "step", "k", {"v": 1}),
        entry(2, "s2", "step", "k", {"v": 2}),
        entry(3, "s1", "run", "k", {"v": 3}),
        entry(4, "s1", "step", "k", {"v": 4}),
        entry(5, "s2", "run", "k", {"v": 5}),  # the run's "k" again, from another step
        HistoryEntry(HistoryKind.RUN_COMPLETED, 6),
    ]
    shown = [(c.scope, c.step_id, c.values) for c in current(history)]
    assert shown == [("step", "s1", {"v": 4}), ("step", "s2", {"v": 2}), ("run", None, {"v": 5})]
