"""interpolate() and constant_value(): baking the triggering event into pause expressions."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepwise.server.expr import (
    ExpressionError,
    constant_value,
    evaluate,
    interpolate,
    matches,
)
from stepwise.server.expr._syntax import free_names, parse
from stepwise.server.expr._values import cel_literal

EVENT: dict[str, Any] = {
    "name": "app/signup",
    "data": {
        "user_id": "u-1",
        "n": 2,
        "f": 1.5,
        "ok": True,
        "nil": None,
        "quote": 'say "hi" \\ it\'s',
        "unicode": "héllo wörld ✓ 😀",
        "control": "tab\there\nnew\x00nul\x7fdel\u2028sep",
        "nested": {"list": [1, [2, {"k": "v"}]], "map": {"a": {"b": None}}},
        "empty_list": [],
        "empty_map": {},
    },
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("event.data.user_id == async.data.user_id", '"u-1" == async.data.user_id'),
        ("async.data.n > event.data.n", "async.data.n > 2"),
        ("async.data.f == event.data.f", "async.data.f == 1.5"),
        ("event.data.ok && async.data.ok", "true && async.data.ok"),
        ("event.data.nil == async.data.x", "null == async.data.x"),
        ("event.data.missing == async.data.x", "null == async.data.x"),
        ("event.data.missing.deeper == async.data.x", "null == async.data.x"),
        ("event.data.user_id.nope == async.data.x", "null == async.data.x"),
        ("async.data.x in event.data.empty_list", "async.data.x in []"),
        ("event.data.empty_map == async.data.m", "{} == async.data.m"),
        ("event.data['user_id'] == async.data.u", '"u-1" == async.data.u'),
        ("event.data.nested.list[1][0] == async.x", "2 == async.x"),
        ("has(event.data.nil) && has(async.data.y)", "true && has(async.data.y)"),
        ("has(event.data.nope) || vars.x == 1", "false || (vars.x == 1)"),
        ("event.name.startsWith('app/')", "\"app/signup\".startsWith('app/')"),
        ("async.data.id == 'event.data.user_id'", "async.data.id == 'event.data.user_id'"),
        ('async.data.id == "event.data.n"', 'async.data.id == "event.data.n"'),
        ("async.data.n == 1", "async.data.n == 1"),  # no event: unchanged text
        ("event.data.n == 2", "2 == 2"),
        (
            "async.data.items.exists(event, event.id == 1) && event.data.n == 2",
            "async.data.items.exists(event, event.id == 1) && (2 == 2)",
        ),
    ],
)
def test_interpolate_text(source: str, expected: str) -> None:
    assert interpolate(source, EVENT) == expected


@pytest.mark.parametrize(
    "path",
    ["user_id", "n", "f", "ok", "nil", "quote", "unicode", "control", "nested", "empty_list"],
)
def test_interpolated_values_round_trip(path: str) -> None:
    value = EVENT["data"][path]
    source = f"event.data.{path} == async.data.{path}"
    interpolated = interpolate(source, EVENT)
    assert "event" not in free_names(parse(interpolated))
    assert matches(interpolated, {"async": {"data": {path: value}}})
    assert evaluate(interpolated.split(" == ")[0], {}) == value


def test_match_sugar() -> None:
    # The SDK's `match: "data.order_id"` becomes this `if`.
    source = "event.data.order_id == async.data.order_id"
    trigger = {"name": "order/created", "data": {"order_id": "o'1\"x"}}
    pause = interpolate(source, trigger)
    assert constant_value(pause) == (False, None)
    assert matches(pause, {"async": {"data": {"order_id": "o'1\"x"}}})
    assert not matches(pause, {"async": {"data": {"order_id": "o'1"}}})
    assert not matches(pause, {"async": {"data": {}}})
    # a trigger without the field matches events without it (null == null), as Inngest does
    pause = interpolate(source, {"name": "order/created", "data": {}})
    assert pause == "null == async.data.order_id"
    assert matches(pause, {"async": {"data": {}}})
    assert not matches(pause, {"async": {"data": {"order_id": "x"}}})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 == 2", (True, False)),
        ("1 == 1.0", (True, True)),
        ("'a' + 'b'", (True, "ab")),
        ("[1, 2].exists(x, x == 2)", (True, True)),
        ("null == null", (True, True)),
        ("lowercase('A')", (True, "a")),
        ("async.data.x == 1", (False, None)),
        ("vars.x == 1", (False, None)),
        ("now() > date('2020-01-01T00:00:00Z')", (False, None)),  # reads the clock
        ("now_plus('1h') > now()", (False, None)),
        ("1 / 0 == 1", (False, None)),  # evaluation fails: not decided now
        ("1 ==", (False, None)),
    ],
)
def test_constant_value(source: str, expected: tuple[bool, Any]) -> None:
    assert constant_value(source) == expected


def test_constant_after_interpolation() -> None:
    assert constant_value(interpolate("event.data.n == 3", EVENT)) == (True, False)
    assert constant_value(interpolate("event.data.n == 2 && true", EVENT)) == (True, True)
    cancel = interpolate("event.data.n == 2 && async.data.n == 2", EVENT)
    assert constant_value(cancel) == (False, None)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (-5, "-5"),
        (2**63 - 1, "9223372036854775807"),
        (-(2**63), "-9223372036854775808"),
        (2**63, "9223372036854775808u"),
        (1.0, "1.0"),
        (1e20, "1e+20"),
        (float("inf"), 'double("Infinity")'),
        (float("-inf"), '-double("Infinity")'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\x00\n", '"\\u0000\\n"'),
        ("é😀", '"é😀"'),
        (b"a\xff", 'b"a\\xff"'),
        ([1, "x"], '[1, "x"]'),
        ({"k": [None]}, '{"k": [null]}'),
    ],
)
def test_cel_literal(value: Any, text: str) -> None:
    assert cel_literal(value) == text
    got = evaluate(text, {})
    assert got == value
    assert type(got) is type(value)


def test_cel_literal_nan_and_huge_ints() -> None:
    assert math.isnan(evaluate(cel_literal(float("nan")), {}))
    assert evaluate(cel_literal(2**70), {}) == float(2**70)
    assert evaluate(cel_literal(2**70) + " == x", {"x": 2**70}) is True
    with pytest.raises(ValueError):
        cel_literal(10**400)
    with pytest.raises(ValueError):
        cel_literal(object())


def test_interpolate_errors() -> None:
    with pytest.raises(ExpressionError):
        interpolate("event.data.x ==", EVENT)
    with pytest.raises(ExpressionError):  # outside the parser's subset
        interpolate(".event.data.n == 1", EVENT)
    with pytest.raises(ExpressionError):  # a lone surrogate has no CEL literal
        interpolate("event.data.s == async.data.s", {"data": {"s": "\ud800"}})


# -- property: interpolating then evaluating equals evaluating with both events -------------

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False),
    st.sampled_from(["", "x", "X", "a'b", 'q"', "\\", "é"]),
    _text,
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    ),
    max_leaves=6,
)
_keys = st.sampled_from(["a", "b", "c"])


def _path(root: str) -> st.SearchStrategy[str]:
    return st.lists(_keys, min_size=1, max_size=3).map(lambda ks: ".".join([root, "data", *ks]))


_atoms = st.one_of(
    _path("event"),
    _path("async"),
    _path("event").map(lambda p: f"has({p})"),
    _path("async").map(lambda p: f"has({p})"),
    _json.map(cel_literal),
)


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    ops = st.sampled_from(["==", "!=", "<", ">=", "&&", "||", "in", "+"])
    return st.one_of(
        st.tuples(inner, ops, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda x: f"!({x})"),
        inner.map(lambda x: f"size({x})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.lists(inner, max_size=2).map(lambda xs: "[" + ", ".join(xs) + "]"),
    )


_expressions = st.recursive(_atoms, _combine, max_leaves=5)
_events = st.fixed_dictionaries({"data": st.dictionaries(_keys, _json, max_size=3)})


def _outcome(source: str, variables: dict[str, Any]) -> Any:
    try:
        return ("ok", evaluate(source, variables))
    except ExpressionError:
        return ("error", None)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and type(a) is type(b)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(source=_expressions, event=_events, incoming=_events)
def test_interpolation_preserves_meaning(
    source: str, event: dict[str, Any], incoming: dict[str, Any]
) -> None:
    direct = _outcome(source, {"event": event, "async": incoming})
    interpolated = interpolate(source, event)
    assert "event" not in free_names(parse(interpolated))
    later = _outcome(interpolated, {"async": incoming})
    assert direct[0] == later[0], (source, interpolated)
    if direct[0] == "ok" and not isinstance(direct[1], list | dict):
        assert _same(direct[1], later[1]), (source, interpolated)
    elif direct[0] == "ok":
        assert direct[1] == later[1] or str(direct[1]) == str(later[1])


@settings(max_examples=300, deadline=None)
@given(value=_json)
def test_cel_literal_round_trip(value: Any) -> None:
    got = evaluate(cel_literal(value), {})
    # equal under CEL's ==; ints outside int64/uint64 become doubles, as the binding does
    assert evaluate("x == y", {"x": got, "y": value}) is True
