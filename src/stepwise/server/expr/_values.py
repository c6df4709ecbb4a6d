"""JSON values: path lookup with the dialect's null semantics, CEL literals, index keys."""

from __future__ import annotations

import json
import math
from typing import Any

from ._syntax import Call, Ident, Index, ListLit, Lit, MapLit, Node, Select, Unary

Segment = str | int
# ``output``: a run's output, which a run search (``api/run_search.py``) reads.
ROOTS = frozenset({"event", "async", "vars", "output"})

_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_EXACT_FLOAT_INT = 2**53


def resolve(value: Any, segments: tuple[Segment, ...]) -> Any:
    """Follow ``segments`` from ``value``; a missing key, a bad index or a non-container is null."""
    for seg in segments:
        if isinstance(value, dict):
            value = value.get(seg)
        elif isinstance(value, list) and type(seg) is int:
            value = value[seg] if 0 <= seg < len(value) else None
        else:
            return None
    return value


def has_path(value: Any, segments: tuple[Segment, ...]) -> bool:
    """``has(x.a.b)``: the last key is present in the map reached by the other segments."""
    container = resolve(value, segments[:-1])
    return isinstance(container, dict) and segments[-1] in container


def value_at(obj: Any, path: str) -> Any:
    """The value at a dotted path (``"data.user.id"``), or None when any part is missing.

    A segment of digits indexes into a list; an empty path is ``obj`` itself.
    """
    if not path:
        return obj
    for seg in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(seg)
        elif isinstance(obj, list) and seg.isdigit():
            i = int(seg)
            obj = obj[i] if i < len(obj) else None
        else:
            return None
    return obj


def chain(node: Node, bound: frozenset[str]) -> tuple[str, tuple[Segment, ...]] | None:
    """``(root, segments)`` if ``node`` is ``root.f.g["k"][0]`` with a free root variable."""
    segments: list[Segment] = []
    while True:
        if isinstance(node, Select):
            segments.append(node.field)
            node = node.operand
        elif isinstance(node, Index) and isinstance(node.index, Lit):
            index = node.index
            if index.kind == "string" or index.kind in ("int", "uint"):
                segments.append(index.value)
            else:
                return None
            node = node.operand
        elif isinstance(node, Ident):
            if node.name in ROOTS and node.name not in bound:
                return node.name, tuple(reversed(segments))
            return None
        else:
            return None


def has_chain(node: Node, bound: frozenset[str]) -> tuple[str, tuple[Segment, ...]] | None:
    """The chain tested by ``has(root.a.b)``, when ``node`` is such a call."""
    if (
        isinstance(node, Call)
        and node.name == "has"
        and node.target is None
        and len(node.args) == 1
        and isinstance(node.args[0], Select)
    ):
        found = chain(node.args[0], bound)
        if found is not None and found[1]:
            return found
    return None


def cel_literal(value: Any) -> str:
    """CEL source for a JSON-like value; ``ValueError`` if it has no literal form."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return str(value)
        if 0 < value <= _UINT64_MAX:
            return f"{value}u"  # what the binding makes of such an int
        try:
            return _float_literal(float(value))
        except OverflowError:
            raise ValueError(f"integer {value} is out of range") from None
    if isinstance(value, float):
        return _float_literal(value)
    if isinstance(value, str):
        return _string_literal(value)
    if isinstance(value, bytes):
        body = "".join(
            chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}" for b in value
        )
        return f'b"{body}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cel_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{cel_literal(k)}: {cel_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise ValueError(f"no CEL literal for a {type(value).__name__}")


def _float_literal(value: float) -> str:
    if math.isnan(value):
        return 'double("NaN")'
    if math.isinf(value):
        return 'double("Infinity")' if value > 0 else '-double("Infinity")'
    return repr(value)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string_literal(text: str) -> str:
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError("string contains a lone surrogate")
        elif ch.isprintable():
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


_NOT_LITERAL = object()


def literal_value(node: Node) -> Any:
    """The JSON value of a literal expression, or ``_NOT_LITERAL``."""
    if isinstance(node, Lit):
        return _NOT_LITERAL if node.kind == "bytes" else node.value
    if isinstance(node, Unary) and node.op == "-" and isinstance(node.operand, Lit):
        if node.operand.kind in ("int", "float"):
            return -node.operand.value
        return _NOT_LITERAL
    if isinstance(node, ListLit):
        items = [literal_value(i) for i in node.items]
        return _NOT_LITERAL if any(i is _NOT_LITERAL for i in items) else items
    if isinstance(node, MapLit):
        result: dict[str, Any] = {}
        for key, val in node.entries:
            if not (isinstance(key, Lit) and key.kind == "string"):
                return _NOT_LITERAL
            v = literal_value(val)
            if v is _NOT_LITERAL:
                return _NOT_LITERAL
            result[key.value] = v
        return result
    return _NOT_LITERAL


def is_literal(value: Any) -> bool:
    return value is not _NOT_LITERAL


def index_value(value: Any) -> str:
    """A canonical string for ``value``: values equal under the dialect's ``==`` share it.

    Numbers compare by value (``1``, ``1.0`` and ``-0.0 + 1`` agree; integers beyond 2**53
    are rounded as the evaluator rounds them when it compares with a double), booleans stay
    distinct from numbers, strings from numbers, and map key order does not matter.
    """
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > _EXACT_FLOAT_INT:
            try:
                return int(float(value))
            except OverflowError:
                return value
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return _canonical(int(value))
        return value
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {index_value(k): _canonical(v) for k, v in value.items()}
    return f"<{type(value).__name__}:{value!r}>"
