"""The tokenizer, parser and printer behind interpolation, lifting and index terms."""

from __future__ import annotations

from typing import Any

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepwise.server.expr._lexer import tokenize
from stepwise.server.expr._syntax import (
    Binary,
    Call,
    Cond,
    Ident,
    Index,
    Lit,
    Select,
    Unary,
    emit,
    free_names,
    parse,
)


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("'plain'", "plain"),
        ('"dq \\" \\\\ \\n \\t"', 'dq " \\ \n \t'),
        ("'\\x41\\101\\u00e9\\U0001F600'", "AAé😀"),
        ("'\\a\\b\\f\\v\\?\\`\\''", "\a\b\f\v?`'"),
        ("'''tri ' \" ple'''", "tri ' \" ple"),
        ('"""multi\nline"""', "multi\nline"),
        ("r'\\n\\x'", "\\n\\x"),
        ('R"\\d+"', "\\d+"),
        ("'é✓'", "é✓"),
        ("b'\\xff\\x00a'", b"\xff\x00a"),
        ("B'é'", "é".encode()),
        ("b'\\377a\\x00'", b"\xffa\x00"),
    ],
)
def test_string_literals(source: str, value: Any) -> None:
    (tok, _eof) = tokenize(source)
    assert tok.value == value
    assert tok.text == source
    assert cel.evaluate(source) == value


@pytest.mark.parametrize(
    ("source", "kind", "value"),
    [
        ("42", "int", 42),
        ("0x1F", "int", 31),
        ("7u", "uint", 7),
        ("0xffU", "uint", 255),
        ("1.5", "float", 1.5),
        (".5", "float", 0.5),
        ("1e3", "float", 1000.0),
        ("2.5E-2", "float", 0.025),
        ("1e+20", "float", 1e20),
    ],
)
def test_number_literals(source: str, kind: str, value: Any) -> None:
    (tok, _eof) = tokenize(source)
    assert (tok.kind, tok.value) == (kind, value)
    assert cel.evaluate(source) == value


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("a.b", Select(Ident("a"), "b")),
        ("a[0]", Index(Ident("a"), Lit("int", 0, "0"))),
        ("f(x)", Call("f", (Ident("x"),))),
        ("x.f()", Call("f", (), Ident("x"))),
        ("-x", Unary("-", Ident("x"))),
        ("!!x", Unary("!", Unary("!", Ident("x")))),
        ("a || b && c", Binary("||", Ident("a"), Binary("&&", Ident("b"), Ident("c")))),
        ("a == b && c", Binary("&&", Binary("==", Ident("a"), Ident("b")), Ident("c"))),
        ("a + b * c", Binary("+", Ident("a"), Binary("*", Ident("b"), Ident("c")))),
        ("a - b - c", Binary("-", Binary("-", Ident("a"), Ident("b")), Ident("c"))),
        ("a in b == c", Binary("==", Binary("in", Ident("a"), Ident("b")), Ident("c"))),
        ("a < b + 1", Binary("<", Ident("a"), Binary("+", Ident("b"), Lit("int", 1, "1")))),
        (
            "a ? b : c ? d : e",
            Cond(Ident("a"), Ident("b"), Cond(Ident("c"), Ident("d"), Ident("e"))),
        ),
        ("-a.b", Unary("-", Select(Ident("a"), "b"))),
    ],
)
def test_parse(source: str, tree: Any) -> None:
    assert parse(source) == tree


@pytest.mark.parametrize(
    "source",
    [
        "1 + 2 * 3 - 4 / 2 % 3",
        "(1 + 2) * 3",
        "!(true && false) || !false",
        "-(-3) + -2",
        "--3",
        "-9223372036854775808",
        "1 < 2 == true",
        "[1, 2, 3,][1]",
        "{'a': [1, {'b': 2}], 'c': null,}.a[1].b",
        "true ? 1 : false ? 2 : 3",
        "(true ? 1 : 2) + 1",
        "[1, 2].exists(x, x > 1) && [3].all(y, y == 3)",
        "[1, 2].map(x, x > 1, x * 10)",
        "'abc'.size() + size('de')",
        "1 in [1, 2] && 'a' in {'a': 1}",
        "(1 == 1) == (2 == 2)",
        "'x' + // comment\n 'y'",
        "type(1) == int && dyn(2) == 2",
        "duration('1h') + duration('30m') == duration('90m')",
        "[[1], [2]][1][0]",
    ],
)
def test_print_round_trip(source: str) -> None:
    printed = emit(parse(source))
    assert parse(printed) == parse(source)
    assert cel.evaluate(printed) == cel.evaluate(source)


@pytest.mark.parametrize(
    "source",
    ["", "1 +", "(1", "[1", "{1: 2", "a.", "a.1", "'open", "1 ? 2", "a b", "@", "Msg{a: 1}", ".a"],
)
def test_parse_errors(source: str) -> None:
    with pytest.raises(SyntaxError):
        parse(source)


def test_free_names() -> None:
    tree = parse("event.data.l.exists(x, x == async.y) && vars.z.all(event, event > 1) && f(w)")
    assert free_names(tree) == {"event", "async", "vars", "w"}
    assert free_names(parse("[1].map(v, v + 1)")) == set()
    assert free_names(parse("'event.data' == \"async\"")) == set()


def test_deep_nesting_is_rejected_not_crashing() -> None:
    with pytest.raises(SyntaxError):
        parse("(" * 400 + "1" + ")" * 400)


_chars = st.characters(blacklist_categories=("Cs",))
_escapes = st.sampled_from(
    ["\\n", "\\t", "\\\\", "\\'", '\\"', "\\x41", "\\101", "\\u00e9", "\\U0001F600", "\\?", "\\`"]
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.one_of(_chars.filter(lambda c: c not in "\\'\r\n"), _escapes), max_size=12)
)
def test_string_decoding_agrees_with_cel(parts: list[str]) -> None:
    source = "'" + "".join(parts) + "'"
    (tok, _eof) = tokenize(source)
    assert tok.value == cel.evaluate(source)
