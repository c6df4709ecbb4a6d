"""Sessions (4.x reference §5): an event's two layers made one, and a run's shared sessions."""

from __future__ import annotations

from typing import Any

import pytest

from stepwise.protocol.sessions import SessionError, resolve_meta, shared_sessions


def test_own_sessions_win_and_inherited_ones_fill_up_to_five_in_byte_order() -> None:
    meta = {
        "sessions": {"org": "mine", "b": 7, "gone": None},
        "propagated_sessions": {
            "org": "theirs",
            "gone": "x",
            "a": "1",
            "c": "3",
            "Z": "z",
            "d": "4",
        },
    }
    # Own: org, b. Inherited, by bytes ("Z" < "a" < "c" < "d"), minus removed "gone": Z, a, c.
    assert resolve_meta(meta) == {
        "sessions": {"org": "mine", "b": "7", "Z": "z", "a": "1", "c": "3"}
    }


def test_sessions_null_drops_every_inherited_one() -> None:
    assert resolve_meta({"sessions": None, "propagated_sessions": {"org": "x"}}) is None


def test_numbers_are_written_as_javascript_writes_them() -> None:
    meta = {"sessions": {"a": 42, "b": 1.5, "c": 2.0}}
    assert resolve_meta(meta) == {"sessions": {"a": "42", "b": "1.5", "c": "2"}}


def test_other_meta_fields_are_kept_and_the_inherited_layer_is_dropped() -> None:
    meta = {"trace": {"id": "t"}, "propagated_sessions": {"org": "acme"}}
    assert resolve_meta(meta) == {"trace": {"id": "t"}, "sessions": {"org": "acme"}}
    assert resolve_meta({"propagated_sessions": {}}) is None
    assert resolve_meta(None) is None


@pytest.mark.parametrize(
    "meta",
    [
        "x",
        {"sessions": ["a"]},
        {"sessions": {str(i): "x" for i in range(6)}},
        {"sessions": {"": "x"}},
        {"sessions": {"a": ""}},
        {"sessions": {"a": True}},
        {"sessions": {"a": float("inf")}},
        {"sessions": {"a": {"nested": 1}}},
        {"sessions": {"k" * 129: "x"}},
        {"sessions": {"a": "x" * 513}},
        {"propagated_sessions": {"a": None}},
    ],
)
def test_invalid_sessions_are_refused(meta: Any) -> None:
    with pytest.raises(SessionError):
        resolve_meta(meta)


def test_a_run_has_the_sessions_all_its_events_share() -> None:
    metas = [
        {"sessions": {"org": "acme", "tenant": "x"}},
        {"sessions": {"org": "acme", "tenant": "y"}},
    ]
    assert shared_sessions(metas) == {"org": "acme"}
    assert shared_sessions([{"sessions": {"org": "acme"}}, None]) == {}
    assert shared_sessions([]) == {}
    many = {"sessions": {k: "1" for k in "fedcba"}}
    assert list(shared_sessions([many])) == ["a", "b", "c", "d", "e"]
