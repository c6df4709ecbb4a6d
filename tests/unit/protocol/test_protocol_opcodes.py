"""Opcodes and generator op objects of a 206 response (reference §4, §12.1, §12.21)."""

from __future__ import annotations

from typing import Any

import pytest

from stepwise.protocol import GeneratorOp, Opcode, OpParseError, WireError, parse_opcode, parse_ops

# --- parse_opcode -----------------------------------------------------------------


@pytest.mark.parametrize("op", list(Opcode))
def test_parse_opcode_exact(op: Opcode) -> None:
    assert parse_opcode(op.value) is op


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AiGateway", Opcode.AI_GATEWAY),
        ("AIGateway", Opcode.AI_GATEWAY),
        ("aigateway", Opcode.AI_GATEWAY),
        ("STEPRUN", Opcode.STEP_RUN),
        ("stepRun", Opcode.STEP_RUN),
        ("waitforevent", Opcode.WAIT_FOR_EVENT),
        ("none", Opcode.NONE),
    ],
)
def test_parse_opcode_case_insensitive(text: str, expected: Opcode) -> None:
    assert parse_opcode(text) is expected


def test_ai_gateway_wire_value() -> None:
    assert Opcode.AI_GATEWAY.value == "AIGateway"
    assert parse_opcode("AiGateway") == parse_opcode("AIGateway")


@pytest.mark.parametrize(
    "text", ["", "Unknown", "StepNotFound", "Step Run", " StepRun", "Step_Run"]
)
def test_parse_opcode_unknown(text: str) -> None:
    with pytest.raises(OpParseError, match="unknown op"):
        parse_opcode(text)


@pytest.mark.parametrize("value", [None, 1, ["StepRun"], {"op": "StepRun"}])
def test_parse_opcode_non_string(value: object) -> None:
    with pytest.raises(OpParseError, match="must be a string"):
        parse_opcode(value)


def test_op_parse_error_is_value_error() -> None:
    assert issubclass(OpParseError, ValueError)


# --- parse_ops: body shapes ------------------------------------------------------------


def test_parse_ops_array() -> None:
    ops = parse_ops(
        [
            {"op": "StepRun", "id": "a", "name": "first", "data": 1},
            {"op": "Sleep", "id": "b", "name": "1h"},
        ]
    )
    assert [(o.op, o.id, o.name) for o in ops] == [
        (Opcode.STEP_RUN, "a", "first"),
        (Opcode.SLEEP, "b", "1h"),
    ]


def test_parse_ops_single_object() -> None:
    ops = parse_ops({"op": "StepPlanned", "id": "abc", "name": "s"})
    assert len(ops) == 1
    assert ops[0].op is Opcode.STEP_PLANNED
    assert ops[0].id == "abc"


@pytest.mark.parametrize("body", [None, []])
def test_parse_ops_empty(body: object) -> None:
    assert parse_ops(body) == []


def test_parse_ops_skips_null_elements() -> None:
    ops = parse_ops([None, {"op": "StepRun", "id": "a"}, None])
    assert [o.id for o in ops] == ["a"]


@pytest.mark.parametrize("body", ["StepRun", 1, True])
def test_parse_ops_rejects_non_array(body: object) -> None:
    with pytest.raises(OpParseError, match="array"):
        parse_ops(body)


@pytest.mark.parametrize(
    "body",
    [
        [1],
        ["StepRun"],
        [{"id": "a"}],
        [{"op": "Nope", "id": "a"}],
        [{"op": "StepRun", "id": 5}],
        [{"op": "StepRun", "id": "a", "name": 5}],
        [{"op": "StepRun", "id": "a", "opts": []}],
        [{"op": "StepRun", "id": "a"}, {"op": "Bogus"}],
    ],
)
def test_parse_ops_rejects_bad_elements(body: object) -> None:
    with pytest.raises(OpParseError):
        parse_ops(body)


# --- parse_ops: Python SDK (explicit nulls) vs JS SDK (absent fields) ---------------------

PY_STEP_RUN: dict[str, Any] = {
    "op": "StepRun",
    "id": "e7d8a2f140845095749d60246ff1110c9d01d76a",
    "name": "my-step-id",
    "displayName": "my-step-id",
    "opts": None,
    "data": None,
    "error": None,
    "userland": {"id": "x", "index": None},
    "timing": None,
}


def test_parse_python_sdk_op_with_explicit_nulls() -> None:
    (op,) = parse_ops([PY_STEP_RUN])
    assert op.op is Opcode.STEP_RUN
    assert op.id == PY_STEP_RUN["id"]
    assert op.name == "my-step-id"
    assert op.display_name == "my-step-id"
    assert op.opts is None
    assert op.error is None
    assert op.timing is None
    assert op.userland == {"id": "x", "index": None}
    # "data": null is a present null result (the step returned None).
    assert op.data is None
    assert op.has_data is True


def test_parse_js_sdk_op_with_absent_fields() -> None:
    (op,) = parse_ops([{"op": "InvokeFunction", "id": "h", "opts": {"function_id": "app-fn"}}])
    assert op.op is Opcode.INVOKE_FUNCTION
    assert op.name is None
    assert op.display_name is None
    assert op.opts == {"function_id": "app-fn"}
    assert op.data is None
    assert op.has_data is False
    assert op.error is None
    assert op.userland is None


def test_null_and_absent_fields_parse_alike_except_has_data() -> None:
    explicit = GeneratorOp.from_wire(
        {"op": "Sleep", "id": "s", "name": None, "opts": None, "userland": None, "timing": None}
    )
    absent = GeneratorOp.from_wire({"op": "Sleep", "id": "s"})
    assert explicit == absent


@pytest.mark.parametrize(
    ("raw", "data", "has_data"),
    [
        ({"op": "StepRun", "id": "a"}, None, False),
        ({"op": "StepRun", "id": "a", "data": None}, None, True),
        ({"op": "StepRun", "id": "a", "data": 0}, 0, True),
        ({"op": "StepRun", "id": "a", "data": ""}, "", True),
        ({"op": "StepRun", "id": "a", "data": {"k": [1]}}, {"k": [1]}, True),
    ],
)
def test_has_data_semantics(raw: dict[str, Any], data: object, has_data: bool) -> None:
    op = GeneratorOp.from_wire(raw)
    assert op.data == data
    assert op.has_data is has_data


def test_from_wire_missing_or_null_id_becomes_empty() -> None:
    assert GeneratorOp.from_wire({"op": "RunComplete"}).id == ""
    assert GeneratorOp.from_wire({"op": "RunComplete", "id": None}).id == ""


def test_from_wire_non_object_rejected() -> None:
    with pytest.raises(OpParseError, match="object"):
        GeneratorOp.from_wire(["StepRun"])


def test_from_wire_tolerates_odd_optional_fields() -> None:
    op = GeneratorOp.from_wire(
        {"op": "StepRun", "id": "a", "displayName": 7, "userland": "x", "timing": [1]}
    )
    assert op.display_name is None
    assert op.userland is None
    assert op.timing is None


def test_from_wire_wraps_non_object_error() -> None:
    op = GeneratorOp.from_wire({"op": "StepError", "id": "a", "error": "boom"})
    assert op.error == {"name": "Error", "message": "boom"}
    op = GeneratorOp.from_wire(
        {"op": "StepError", "id": "a", "error": {"name": "TypeError", "message": "m"}}
    )
    assert op.error == {"name": "TypeError", "message": "m"}


def test_from_wire_ignores_unknown_keys() -> None:
    op = GeneratorOp.from_wire({"op": "StepRun", "id": "a", "extra": 1})
    assert op == GeneratorOp(op=Opcode.STEP_RUN, id="a")


# --- to_wire ----------------------------------------------------------------------------


def test_to_wire_minimal() -> None:
    assert GeneratorOp(op=Opcode.SLEEP, id="s").to_wire() == {"op": "Sleep", "id": "s"}


def test_to_wire_keeps_explicit_null_data() -> None:
    op = GeneratorOp.from_wire({"op": "StepRun", "id": "a", "data": None})
    assert op.to_wire() == {"op": "StepRun", "id": "a", "data": None}


def test_to_wire_full_round_trip() -> None:
    raw = {
        "op": "StepRun",
        "id": "a",
        "name": "n",
        "displayName": "Nice name",
        "opts": {"type": "step.run"},
        "data": [1, 2],
        "error": {"name": "Error", "message": "m"},
        "userland": {"id": "n", "index": 0},
        "timing": {"start": 1, "end": 2},
    }
    assert GeneratorOp.from_wire(raw).to_wire() == raw


def test_to_wire_drops_python_nulls() -> None:
    wire = GeneratorOp.from_wire(PY_STEP_RUN).to_wire()
    assert wire == {
        "op": "StepRun",
        "id": PY_STEP_RUN["id"],
        "name": "my-step-id",
        "displayName": "my-step-id",
        "data": None,
        "userland": {"id": "x", "index": None},
    }


def test_to_wire_uses_canonical_op_spelling() -> None:
    assert GeneratorOp.from_wire({"op": "aigateway", "id": "g"}).to_wire()["op"] == "AIGateway"


# --- WireError ---------------------------------------------------------------------------


def test_wire_error_full_object() -> None:
    err = WireError.from_wire(
        {"name": "TypeError", "message": "bad", "stack": "at x", "cause": {"a": 1}}
    )
    assert err == WireError(
        name="TypeError", message="bad", stack="at x", extra={"cause": {"a": 1}}
    )
    assert err.to_wire() == {
        "cause": {"a": 1},
        "name": "TypeError",
        "message": "bad",
        "stack": "at x",
    }


def test_wire_error_defaults_for_empty_object() -> None:
    err = WireError.from_wire({})
    assert err == WireError(name="Error", message="", stack=None, extra={})
    assert err.to_wire() == {"name": "Error", "message": ""}


@pytest.mark.parametrize("name", [None, "", 5])
def test_wire_error_bad_name_uses_default(name: object) -> None:
    assert WireError.from_wire({"name": name, "message": "m"}).name == "Error"
    assert WireError.from_wire({"name": name}, default_name="StepError").name == "StepError"


def test_wire_error_message_fallbacks() -> None:
    assert WireError.from_wire({"error": "from error"}).message == "from error"
    assert WireError.from_wire({"message": 42}).message == "42"
    assert WireError.from_wire({"message": None}).message == ""
    # An explicit message wins over the "error" field, which is kept as an extra.
    err = WireError.from_wire({"message": "m", "error": "e"})
    assert err.message == "m"
    assert err.extra == {"error": "e"}


def test_wire_error_non_string_stack_dropped() -> None:
    assert WireError.from_wire({"message": "m", "stack": ["x"]}).stack is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [("plain text", "plain text"), (None, ""), (404, "404"), (["a"], "['a']")],
)
def test_wire_error_from_non_object(raw: object, message: str) -> None:
    err = WireError.from_wire(raw, default_name="NonRetriableError")
    assert err == WireError(name="NonRetriableError", message=message)


def test_wire_error_to_wire_name_and_message_override_extras() -> None:
    err = WireError(name="E", message="m", extra={"name": "shadow", "__serialized": True})
    assert err.to_wire() == {"name": "E", "message": "m", "__serialized": True}
