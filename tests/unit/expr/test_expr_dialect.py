"""Evaluation in Inngest's CEL dialect: null for missing fields, numbers, helpers, errors."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stepwise.server.expr import (
    CACHE_SIZE,
    ExpressionError,
    _dialect,
    check,
    constant_value,
    evaluate,
    index_terms,
    interpolate,
    matches,
)
from stepwise.server.expr._functions import parse_duration

EVENT: dict[str, Any] = {
    "name": "shop/order.created",
    "id": "01HX",
    "ts": 1_700_000_000_000,
    "data": {
        "order_id": "A-1",
        "n": 3,
        "f": 2.5,
        "s": "Hello",
        "nil": None,
        "flag": True,
        "list": [1, 2.0, "x", {"id": 7}],
        "user": {"id": "u1", "email": "Ann@Example.COM", "tags": ["a", "b"]},
        "when": "2024-05-01T12:00:00Z",
        "raw": '{"a": [1, {"b": null}]}',
    },
}
ASYNC: dict[str, Any] = {"name": "shop/order.paid", "data": {"order_id": "A-1", "amount": 10}}
VARS = {"event": EVENT, "async": ASYNC}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # missing fields read as null
        ("event.data.missing == null", True),
        ("event.data.missing != null", False),
        ("event.data.missing == 1", False),
        ("event.data.missing == 'x'", False),
        ("event.data.missing != 'x'", True),
        ("event.data.a.b.c == null", True),
        ("event.nothing.at.all == null", True),
        ("event.data.nil == null", True),
        ("event.data.nil.deeper == null", True),
        ("event.data.s.field == null", True),  # a field of a string
        ("event.data.n.field == null", True),
        ("event.data.list.field == null", True),
        ("event.data['missing'] == null", True),
        ("event.data['user']['id'] == 'u1'", True),
        ("event.data.list[3].id == 7", True),
        ("event.data.list[3].missing == null", True),
        ("event.data.list[9] == null", True),
        ("event.data.list[9].id == null", True),
        ("async.data.missing == null && async.data.order_id == 'A-1'", True),
        ("vars.anything == null", True),  # vars not given at all
        ("event.data.missing == null ? 'yes' : 'no'", "yes"),
        ("[event.data.missing, event.data.n]", [None, 3]),
        ("event.data.user", EVENT["data"]["user"]),
        ("event.data.nil", None),
        ("event.data.missing", None),
        # has() keeps its meaning
        ("has(event.data.missing)", False),
        ("has(event.data.nil)", True),
        ("has(event.data.user.id)", True),
        ("has(event.data.user.nope)", False),
        ("has(event.data.a.b)", False),
        ("has(event.data.s.x)", False),
        ("!has(event.data.missing) || event.data.missing == 1", True),
        ("has(event.data.n) && event.data.n == 3", True),
        # numbers: ints and floats compare by value
        ("event.data.n == 3.0", True),
        ("event.data.n > 2.5", True),
        ("event.data.f < 3", True),
        ("event.data.f >= 2.5 && event.data.f <= 2.5", True),
        ("1 == 1.0", True),
        ("2 > 1.5", True),
        ("event.data.n in [1.0, 3.0]", True),
        ("3.0 in [event.data.n]", True),
        ("event.data.list[1] == 2", True),
        ("event.data.list == [1.0, 2, 'x', {'id': 7.0}]", True),
        ("event.data.flag == 1", False),  # bools are not numbers
        ("event.data.n == '3'", False),  # strings are not numbers
        ("event.ts > 1600000000000", True),
        # ordinary CEL still works
        ("event.data.s.startsWith('He') && event.data.s.size() == 5", True),
        ("size(event.data.user.tags) == 2", True),
        ("'a' in event.data.user.tags", True),
        ("'order_id' in event.data", True),
        ("event.data.list.exists(x, x == 'x')", True),
        ("event.data.user.tags.all(t, t.size() == 1)", True),
        ("event.data.user.tags.map(t, t + '!')", ["a!", "b!"]),
        ("[1, 2, 3].filter(x, x > event.data.n - 2)", [2, 3]),
        ("event.data.list.map(event, event)", EVENT["data"]["list"]),  # a bound name shadows
        ("type(event.data.n) == int", True),
        ("event.data.s + ' ' + event.data.user.id", "Hello u1"),
        ("event.name.endsWith('created') || event.data.missing", True),
    ],
)
def test_evaluate(source: str, expected: Any) -> None:
    assert evaluate(source, VARS) == expected
    assert type(evaluate(source, VARS)) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("lowercase(event.data.user.email) == 'ann@example.com'", True),
        ("uppercase(event.data.s) == 'HELLO'", True),
        ("event.data.s.lowercase() == 'hello'", True),
        ("json_parse(event.data.raw).a[0] == 1", True),
        ("json_parse(event.data.raw).a[1].b == null", True),
        ("json_parse('[1, 2.5]')", [1, 2.5]),
        ("date(event.data.when) == timestamp('2024-05-01T12:00:00Z')", True),
        ("date('2024-05-01T14:00:00+02:00') == date(event.data.when)", True),
        ("date('2024-05-01t12:00:00.123456789z') > date(event.data.when)", True),
        ("date(event.data.when) < now()", True),
        ("now_plus('1h') > now()", True),
        ("now_minus('90m') < now()", True),
        ("now_plus('1d') > now_plus('23h59m')", True),
        ("now_plus(duration('1h')) > now()", True),
        ("date(event.data.when) < now_minus('1w')", True),
    ],
)
def test_helpers(source: str, expected: Any) -> None:
    assert evaluate(source, VARS) == expected


def test_clock_helpers_are_current() -> None:
    before = datetime.now(UTC)
    got = evaluate("now_plus('2h')", {})
    assert before + timedelta(hours=2) <= got <= datetime.now(UTC) + timedelta(hours=2)
    got = evaluate("now_minus('30s')", {})
    assert got <= datetime.now(UTC) - timedelta(seconds=30)
    assert isinstance(evaluate("now()", {}), datetime)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("300ms", timedelta(milliseconds=300)),
        ("1.5h", timedelta(minutes=90)),
        ("2h45m", timedelta(hours=2, minutes=45)),
        ("-1m", timedelta(minutes=-1)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("10us", timedelta(microseconds=10)),
        ("10µs", timedelta(microseconds=10)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1x", "1h 2m", "--1s", "1h-2m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    "source",
    [
        "event.data.missing > 1",  # null has no ordering
        "event.data.s > 1",
        "1 / 0",
        "lowercase(event.data.n)",
        "lowercase(event.data.missing)",
        "json_parse('not json')",
        "date('yesterday')",
        "now_plus('soon')",
        "event.data.user[event.data.s]",  # computed index: plain CEL semantics
        "undeclared_variable == 1",
    ],
)
def test_evaluation_errors(source: str) -> None:
    check(source)
    with pytest.raises(ExpressionError):
        evaluate(source, VARS)
    assert matches(source, VARS) is False


@pytest.mark.parametrize("source", ["", "event.data.a ==", "(", "'unterminated", "a.b(", "1 +* 2"])
def test_invalid_sources(source: str) -> None:
    with pytest.raises(ExpressionError):
        check(source)
    with pytest.raises(ExpressionError):
        evaluate(source, VARS)
    assert matches(source, VARS) is False


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("async.data.order_id == event.data.order_id", True),
        ("async.data.order_id == 'A-2'", False),
        ("async.data.amount == 10.0 && event.data.user.id == 'u1'", True),
        ("async.data.amount", False),  # not a boolean
        ("'true'", False),
        ("async.data.nope == null", True),
    ],
)
def test_matches(source: str, expected: bool) -> None:
    assert matches(source, VARS) is expected


def test_other_variables_pass_through() -> None:
    assert evaluate("output.total > 2 && event.data.n == 3", {"output": {"total": 3}, **VARS})
    assert evaluate("limit * 2", {"limit": 4}) == 8


def test_syntax_outside_the_subset() -> None:
    # Optional-field syntax is rejected by the binding; message construction and leading-dot
    # names compile but fail at runtime. All go through evaluate() as ExpressionError.
    for source in ["event.?data", "google.protobuf.Int64Value{value: 1}", ".event.data.n == 3"]:
        with pytest.raises(ExpressionError):
            evaluate(source, VARS)
        assert matches(source, VARS) is False


def test_plain_cel_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    # If our parser ever rejects what the binding accepts, evaluation runs the source as
    # plain CEL: values still come out, a missing field gives None instead of raising.
    def refuse(source: str) -> Any:
        raise SyntaxError("unsupported")

    monkeypatch.setattr(_dialect, "parse", refuse)
    _dialect._plan.cache_clear()
    try:
        assert evaluate("event.data.n == 3.0 && lowercase('A') == 'a'", VARS) is True
        assert evaluate("event.data.missing == null", VARS) is None
        assert matches("event.data.missing == null", VARS) is False
        with pytest.raises(ExpressionError):
            evaluate("1 / 0", VARS)
        with pytest.raises(ExpressionError):
            interpolate("event.data.n == async.data.n", EVENT)
        assert index_terms("async.data.n == 1") == []
        assert constant_value("1 == 1") == (False, None)
    finally:
        _dialect._plan.cache_clear()


def test_helper_failures_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="cel"):
        assert matches("lowercase(1) == '1'", {}) is False
    assert caplog.records == []


def test_names_never_collide_with_lifted_inputs() -> None:
    variables = {"__sw0": 5, **VARS}
    assert evaluate("__sw0 == 5 && event.data.n == 3", variables) is True


def test_comments_and_whitespace() -> None:
    source = "event.data.n == 3 // the count\n  && async.data.amount == 10"
    assert matches(source, VARS)


def test_cache_is_large() -> None:
    assert CACHE_SIZE == 50_000
    assert evaluate("event.data.n + 1", VARS) == 4
    assert evaluate("event.data.n + 1", {"event": {"data": {"n": 41}}}) == 42


def test_output_reads_missing_fields_as_null() -> None:
    # A run search reads ``output``: a run with no output yet, or another shape, is no error.
    assert evaluate("output.total == null", {"output": None}) is True
    assert evaluate("output.total == null", {"output": "text"}) is True
    assert evaluate("output.total > 2", {"output": {"total": 3}}) is True
