"""Compilation plans, evaluation, interpolation and pause-index terms (see the package doc)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ._functions import CLOCK_FUNCTIONS, HELPERS
from ._syntax import Binary, Ident, Lit, Node, calls, emit, free_names, parse, transform
from ._values import (
    ROOTS,
    Segment,
    cel_literal,
    chain,
    has_chain,
    has_path,
    is_literal,
    literal_value,
    resolve,
)

CACHE_SIZE = 50_000


class ExpressionError(ValueError):
    """An expression does not compile, or cannot be evaluated on the given input."""


@dataclass(frozen=True, slots=True)
class _Plan:
    error: str | None = None  # the expression does not compile
    program: Any = None  # cel.Program run by evaluate()
    # (input name, root variable, path, is a has() test), when the program is lifted
    lifted: tuple[tuple[str, str, tuple[Segment, ...], bool], ...] = ()
    passthrough: tuple[str, ...] = ()  # other free variables, handed over unchanged
    functions: tuple[tuple[str, Callable[..., Any]], ...] = ()
    tree: Node | None = None  # None: outside the parser's subset
    raw: bool = False  # ``program`` is the unmodified source: plain CEL semantics
    names: frozenset[str] = frozenset()  # free identifiers
    calls: frozenset[str] = frozenset()


@lru_cache(maxsize=CACHE_SIZE)
def _plan(source: str) -> _Plan:
    # Imported on first use: the binding's package also loads its command line (rich,
    # typer, prompt_toolkit), a third of a second that a server without expressions skips.
    import cel

    try:
        raw = cel.compile(source)
    except Exception as exc:  # the binding raises plain exceptions for syntax errors
        return _Plan(error=f"invalid expression {source!r}: {exc}")
    used = frozenset(raw.functions())
    fallback = _Plan(
        program=raw, functions=tuple((n, f) for n, f in HELPERS.items() if n in used), raw=True
    )
    try:
        tree = parse(source)
        names = frozenset(free_names(tree))
    except (SyntaxError, RecursionError):  # outside the subset, or thousands of operators deep
        return fallback
    called = frozenset(calls(tree))
    functions = tuple((n, f) for n, f in HELPERS.items() if n in called)
    prefix = "__sw"
    while any(name.startswith(prefix) for name in names):
        prefix += "_"
    lifted: dict[tuple[str, tuple[Segment, ...], bool], str] = {}

    def lift(node: Node, bound: frozenset[str]) -> Node | None:
        found = has_chain(node, bound)
        is_has = found is not None
        if found is None:
            found = chain(node, bound)
        if found is None:
            return None
        key = (found[0], found[1], is_has)
        name = lifted.setdefault(key, f"{prefix}{len(lifted)}")
        return Ident(name)

    try:
        program = cel.compile(emit(transform(tree, lift)))
    except Exception:  # a printer gap: fall back to the unmodified program
        return _Plan(
            program=raw, functions=functions, tree=tree, names=names, calls=called, raw=True
        )
    return _Plan(
        program=program,
        lifted=tuple((name, root, path, is_has) for (root, path, is_has), name in lifted.items()),
        passthrough=tuple(sorted(names - ROOTS)),
        functions=functions,
        tree=tree,
        names=names,
        calls=called,
    )


def _checked_plan(source: str) -> _Plan:
    plan = _plan(source)
    if plan.error is not None:
        raise ExpressionError(plan.error)
    return plan


def check(source: str) -> None:
    """Raise ``ExpressionError`` if ``source`` does not compile."""
    _checked_plan(source)


def evaluate(source: str, variables: dict[str, Any]) -> Any:
    """Evaluate ``source`` in the dialect: missing fields read as null.

    Raises ``ExpressionError`` if the expression does not compile or its evaluation fails
    for another reason (no such overload, division by zero, a helper given bad input...).
    """
    plan = _checked_plan(source)
    inputs: dict[str, Any] = dict(plan.functions)
    if plan.raw:
        return _evaluate_raw(source, plan, inputs, variables)
    for name, root, path, is_has in plan.lifted:
        base = variables.get(root)
        inputs[name] = has_path(base, path) if is_has else resolve(base, path)
    for name in plan.passthrough:
        if name in variables:
            inputs[name] = variables[name]
    try:
        return plan.program.execute(inputs)
    except Exception as exc:
        raise ExpressionError(f"cannot evaluate {source!r}: {exc}") from exc


def _evaluate_raw(
    source: str, plan: _Plan, inputs: dict[str, Any], variables: dict[str, Any]
) -> Any:
    # Outside the parser's subset: plain CEL, where a missing field raises KeyError.
    inputs.update(variables)
    try:
        return plan.program.execute(inputs)
    except KeyError:
        return None
    except Exception as exc:
        raise ExpressionError(f"cannot evaluate {source!r}: {exc}") from exc


def matches(source: str, variables: dict[str, Any]) -> bool:
    """Whether ``source`` evaluates to ``true``; an error of any kind counts as no."""
    try:
        return evaluate(source, variables) is True
    except ExpressionError:
        return False


def interpolate(source: str, event: dict[str, Any]) -> str:
    """Replace each ``event.<path>`` (and ``has(event.<path>)``) with a literal from ``event``.

    ``async.*``, ``vars.*`` and everything else is left alone, so the result depends only on
    what is still unknown when a pause is written. Expressions that do not mention ``event``
    come back unchanged. Raises ``ExpressionError`` if ``source`` does not compile, is outside
    the parser's subset, or a value has no CEL literal (a string with a lone surrogate).
    """
    plan = _checked_plan(source)
    if plan.tree is None:
        raise ExpressionError(f"cannot interpolate {source!r}: unsupported syntax")
    if "event" not in plan.names:
        return source

    def substitute(node: Node, bound: frozenset[str]) -> Node | None:
        found = has_chain(node, bound)
        if found is not None and found[0] == "event":
            value = has_path(event, found[1])
            return Lit("bool", value, "true" if value else "false")
        found = chain(node, bound)
        if found is None or found[0] != "event":
            return None
        value = resolve(event, found[1])
        try:
            text = cel_literal(value)
        except ValueError as exc:
            raise ExpressionError(f"cannot interpolate {source!r}: {exc}") from exc
        return Lit("value", value, text)

    try:
        return emit(transform(plan.tree, substitute))
    except RecursionError as exc:
        raise ExpressionError(f"cannot interpolate {source!r}: too deeply nested") from exc


def constant_value(source: str) -> tuple[bool, Any]:
    """``(True, value)`` if ``source`` references no variables and does not read the clock.

    ``(False, None)`` otherwise, and also when it does not compile or its evaluation fails.
    """
    try:
        plan = _checked_plan(source)
    except ExpressionError:
        return False, None
    if plan.tree is None or plan.names or plan.calls & CLOCK_FUNCTIONS:
        return False, None
    try:
        return True, evaluate(source, {})
    except ExpressionError:
        return False, None


def index_terms(source: str) -> list[tuple[str, Any]]:
    """Equality terms ``async.<path> == <literal>`` that every match must satisfy.

    Only top-level conjuncts count (``a && (b && c)`` flattens; a ``||`` or ``!`` at the top
    yields nothing). Each term is ``(path, literal)`` with the path relative to ``async``
    (``"data.order_id"``): a matching event's ``value_at(event, path)`` has the same
    ``index_value`` as the literal, missing fields reading as null. Paths with list indexes,
    digit-only or dotted keys are left out, so ``value_at`` can always follow them.
    """
    try:
        plan = _plan(source)
    except RecursionError:
        return []
    if plan.error is not None or plan.tree is None:
        return []
    terms: list[tuple[str, Any]] = []
    stack = [plan.tree]
    conjuncts: list[Node] = []
    while stack:
        node = stack.pop()
        if isinstance(node, Binary) and node.op == "&&":
            stack.extend((node.right, node.left))
        else:
            conjuncts.append(node)
    for node in conjuncts:
        if not (isinstance(node, Binary) and node.op == "=="):
            continue
        for side, other in ((node.left, node.right), (node.right, node.left)):
            found = chain(side, frozenset())
            if found is None or found[0] != "async" or not found[1]:
                continue
            value = literal_value(other)
            if not is_literal(value):
                continue
            path = _index_path(found[1])
            if path is not None:
                terms.append((path, value))
                break
    return terms


def _index_path(segments: tuple[Segment, ...]) -> str | None:
    for seg in segments:
        if not isinstance(seg, str) or not seg or "." in seg or seg.isdigit():
            return None
    return ".".join(str(seg) for seg in segments)
