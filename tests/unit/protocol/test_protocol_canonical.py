"""JSON helpers and RFC 8785 canonicalization (reference §1, §6.2, §12.10)."""

from __future__ import annotations

import pytest

from stepwise.protocol import canonical_json, canonicalize_body, dumps, loads


def test_dumps_is_compact() -> None:
    assert dumps({"a": 1, "b": [1, 2], "c": None}) == b'{"a":1,"b":[1,2],"c":null}'


def test_dumps_rejects_non_str_keys() -> None:
    with pytest.raises(TypeError):
        dumps({1: "x"})


def test_loads_accepts_bytes_and_str() -> None:
    assert loads(b'{"a":[1,2.5,null]}') == {"a": [1, 2.5, None]}
    assert loads('{"a":true}') == {"a": True}


def test_canonical_json_sorts_keys_recursively() -> None:
    value = {"b": 1, "a": {"z": [3, {"y": 1, "x": 2}], "c": True}}
    assert canonical_json(value) == b'{"a":{"c":true,"z":[3,{"x":2,"y":1}]},"b":1}'


def test_canonical_json_sorts_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: U+1F600 is the surrogate pair D83D DE00, which sorts before U+E000
    # in UTF-16 even though its code point is larger.
    value = {"\ue000": 1, "\U0001f600": 2}
    assert canonical_json(value) == '{"\U0001f600":2,"\ue000":1}'.encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"1"),
        (-0.0, b"0"),
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (1e-7, b"1e-7"),
        (0.1, b"0.1"),
        (123.456, b"123.456"),
        (2**53 - 1, b"9007199254740991"),
        (-5, b"-5"),
        (True, b"true"),
        (None, b"null"),
        ("é\n\u2028", '"é\\n\u2028"'.encode()),
    ],
)
def test_canonical_json_scalars(value: object, expected: bytes) -> None:
    assert canonical_json(value) == expected


def test_canonical_json_rejects_non_finite() -> None:
    with pytest.raises(ValueError):
        canonical_json(float("nan"))


def test_canonicalize_body_reorders_and_strips_whitespace() -> None:
    body = b'{\n  "b": [1.0, 2],\n  "a": {"y": 1e21, "x": "s"}\n}'
    assert canonicalize_body(body) == b'{"a":{"x":"s","y":1e+21},"b":[1,2]}'


def test_canonicalize_body_is_idempotent() -> None:
    once = canonicalize_body(b'{"b":1,"a":2}')
    assert canonicalize_body(once) == once == b'{"a":2,"b":1}'


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{broken",
        b"\xff\xfe\x00",
        b"<html></html>",
        b'{"big": 9007199254740993}',  # outside the JCS integer domain
    ],
)
def test_canonicalize_body_leaves_non_json_alone(body: bytes) -> None:
    assert canonicalize_body(body) == body


def test_canonicalize_body_top_level_scalars() -> None:
    assert canonicalize_body(b" 1.0 ") == b"1"
    assert canonicalize_body(b"null") == b"null"
