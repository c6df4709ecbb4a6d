"""index_terms(), index_value() and value_at(): literal lifting for the pause index."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepwise.server.expr import (
    evaluate,
    index_terms,
    index_value,
    interpolate,
    matches,
    value_at,
)
from stepwise.server.expr._values import cel_literal


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("async.data.id == 'x' && async.data.n > 2", [("data.id", "x")]),
        ("'x' == async.data.id", [("data.id", "x")]),
        ('async.data.order_id == "A-1"', [("data.order_id", "A-1")]),
        ("async.data.n == 2", [("data.n", 2)]),
        ("async.data.n == 2.5", [("data.n", 2.5)]),
        ("async.data.n == -3", [("data.n", -3)]),
        ("async.data.n == 7u", [("data.n", 7)]),
        ("async.data.ok == true", [("data.ok", True)]),
        ("async.data.gone == null", [("data.gone", None)]),
        ("async.data.tags == ['a', 1]", [("data.tags", ["a", 1])]),
        ("async.data.m == {'k': [1.5]}", [("data.m", {"k": [1.5]})]),
        ("async.name == 'billing/paid'", [("name", "billing/paid")]),
        ("async.data['user']['id'] == 'u'", [("data.user.id", "u")]),
        ("async.data.s == 'a\\'b\\n\\u00e9'", [("data.s", "a'b\né")]),
        ("async.data.s == r'\\n'", [("data.s", "\\n")]),
        (
            "async.data.a == 'x' && (async.data.b == 1 && async.data.c != 2) && async.data.d == 'y'",
            [("data.a", "x"), ("data.b", 1), ("data.d", "y")],
        ),
        (
            "async.data.a == 'x' && (async.data.b == 1 || async.data.c == 2)",
            [("data.a", "x")],
        ),
        ("(async.data.a == 'x')", [("data.a", "x")]),
        # nothing necessary at the top level
        ("a || b", []),
        ("async.data.a == 'x' || async.data.b == 'y'", []),
        ("!(async.data.a == 'x')", []),
        ("async.data.a != 'x'", []),
        ("async.data.a == 'x' ? true : false", []),
        ("async.data.n > 2", []),
        ("true", []),
        # not a literal, or not an async path
        ("async.data.a == async.data.b", []),
        ("async.data.a == vars.x", []),
        ("async.data.a == event.data.a", []),
        ("event.data.a == 'x'", []),
        ("async.data.a == 'x' + 'y'", []),
        ("async.data.a == b'x'", []),
        ("lowercase(async.data.a) == 'x'", []),
        ("async == {'data': {}}", []),
        ("async.data.items.exists(async, async.data.id == 'x')", []),
        # paths value_at cannot follow faithfully are skipped
        ("async.data.items[0].id == 'x'", []),
        ("async.data['0'] == 'x'", []),
        ("async.data['a.b'] == 'x' && async.data.c == 1", [("data.c", 1)]),
        # strings are not parsed as references
        ("'async.data.a == 1' == async.data.q", [("data.q", "async.data.a == 1")]),
        # broken input
        ("async.data.a ==", []),
        ("", []),
        (".async.data.a == 1", []),
    ],
)
def test_index_terms(source: str, expected: list[tuple[str, Any]]) -> None:
    assert index_terms(source) == expected


def test_index_terms_after_interpolation() -> None:
    trigger = {"data": {"order_id": "A-1", "n": 2}}
    wait_if = interpolate(
        "event.data.order_id == async.data.order_id && async.data.total > event.data.n", trigger
    )
    assert index_terms(wait_if) == [("data.order_id", "A-1")]
    cancel_if = interpolate("async.data.user == event.data.missing", trigger)
    assert index_terms(cancel_if) == [("data.user", None)]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 1.0),
        (0, -0.0),
        (-2, -2.0),
        (2**53 + 1, float(2**53 + 1)),  # CEL compares int and double as doubles
        (1e20, 10**20),
        ({"a": 1, "b": [1, 2.0]}, {"b": [1.0, 2], "a": 1.0}),
        ([{"x": None}], [{"x": None}]),
        ("é", "é"),
    ],
)
def test_index_value_equal(a: Any, b: Any) -> None:
    assert evaluate("a == b", {"a": a, "b": b}) is True
    assert index_value(a) == index_value(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, "1"),
        (True, 1),
        (False, 0),
        (None, False),
        (None, "null"),
        (None, 0),
        ("", None),
        ([1], 1),
        ([1, 2], [2, 1]),
        ({"a": 1}, {"a": "1"}),
        ({"a": 1}, {"b": 1}),
        (1.5, 1),
        ("a", "A"),
    ],
)
def test_index_value_distinct(a: Any, b: Any) -> None:
    assert evaluate("a == b", {"a": a, "b": b}) is False
    assert index_value(a) != index_value(b)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", {"data": {"user": {"id": "u1"}, "list": [10, {"k": "v"}], "nil": None}}),
        ("data.user.id", "u1"),
        ("data.user", {"id": "u1"}),
        ("data.missing", None),
        ("data.missing.deeper", None),
        ("data.user.id.deeper", None),
        ("data.nil", None),
        ("data.nil.x", None),
        ("data.list.0", 10),
        ("data.list.1.k", "v"),
        ("data.list.2", None),
        ("data.list.x", None),
    ],
)
def test_value_at(path: str, expected: Any) -> None:
    obj = {"data": {"user": {"id": "u1"}, "list": [10, {"k": "v"}], "nil": None}}
    assert value_at(obj, path) == expected


def test_value_at_non_maps() -> None:
    assert value_at(None, "data.x") is None
    assert value_at("text", "x") is None
    assert value_at(5, "") == 5


# -- property: a pause that matches always shares its index keys with the event -----------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([1.0, 2.0, -0.0, 2.5, 2**53, 2**53 + 1, 1e20]),
    st.sampled_from(["", "1", "a", "A-1"]),
)
_json = st.recursive(
    _values,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2),
        st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2),
    ),
    max_leaves=4,
)
_paths = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=2).map(
    lambda ks: ".".join(["data", *ks])
)
_data = st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.one_of(_json, st.dictionaries(st.sampled_from(["a", "b", "c"]), _json, max_size=3)),
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(
    terms=st.lists(st.tuples(_paths, _json), min_size=1, max_size=3),
    extra=st.sampled_from(["", " && async.data.a != 99", " && (async.data.b == 1 || true)"]),
    data=_data,
)
def test_index_terms_are_necessary(
    terms: list[tuple[str, Any]], extra: str, data: dict[str, Any]
) -> None:
    source = " && ".join(f"async.{p} == {cel_literal(v)}" for p, v in terms) + extra
    lifted = index_terms(source)
    assert [p for p, _ in lifted] == [p.removeprefix("async.") for p, _ in terms]
    event = {"data": data}
    if matches(source, {"async": event}):
        for path, literal in lifted:
            assert index_value(value_at(event, path)) == index_value(literal)


@settings(max_examples=400, deadline=None)
@given(a=_json, b=_json)
def test_index_value_agrees_with_equality(a: Any, b: Any) -> None:
    equal = evaluate("a == b", {"a": a, "b": b})
    if equal:
        assert index_value(a) == index_value(b)
    elif not _has_big_int(a) and not _has_big_int(b):
        # beyond 2**53 distinct ints may share a key: more candidates, never fewer
        assert index_value(a) != index_value(b)


def _has_big_int(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_big_int(v) for v in value)
    if isinstance(value, dict):
        return any(_has_big_int(v) for v in value.values())
    return isinstance(value, int | float) and not math.isnan(value) and abs(value) > 2**53 - 1
