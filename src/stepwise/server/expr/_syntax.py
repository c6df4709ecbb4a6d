"""A syntax tree for CEL, a recursive-descent parser and a printer.

The grammar follows the CEL language definition (precedence from loosest to tightest:
``?:``, ``||``, ``&&``, relations including ``in``, ``+ -``, ``* / %``, unary ``! -``,
member access ``.f``, ``.f(...)``, ``[i]``). Message construction (``T{f: 1}``), leading-dot
names and optional syntax (``.?f``, ``[?i]``) are not supported and raise ``SyntaxError``.

The printer writes every compound operand in parentheses, so a printed tree re-parses to
the same tree; literals keep their original source text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._lexer import Token, tokenize


@dataclass(frozen=True, slots=True)
class Lit:
    kind: str  # int, uint, float, string, bytes, bool, null
    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class Ident:
    name: str


@dataclass(frozen=True, slots=True)
class Select:
    operand: Node
    field: str


@dataclass(frozen=True, slots=True)
class Index:
    operand: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    target: Node | None = None


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Cond:
    cond: Node
    then: Node
    other: Node


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLit:
    entries: tuple[tuple[Node, Node], ...]


Node = Lit | Ident | Select | Index | Call | Unary | Binary | Cond | ListLit | MapLit

# Comprehension macros: the first argument names a variable bound in the others.
MACROS = frozenset({"all", "exists", "exists_one", "existsOne", "map", "filter"})

_LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"||"}),
    frozenset({"&&"}),
    frozenset({"==", "!=", "<", "<=", ">", ">=", "in"}),
    frozenset({"+", "-"}),
    frozenset({"*", "/", "%"}),
)
_LEVEL_OF = {op: level for level, ops in enumerate(_LEVELS) for op in ops}
_KEYWORDS = {
    "true": ("bool", True),
    "false": ("bool", False),
    "null": ("null", None),
}
_MAX_DEPTH = 100  # nested parentheses, lists, calls...


def parse(source: str) -> Node:
    """Parse ``source``; raise ``SyntaxError`` on anything outside the supported subset."""
    parser = _Parser(tokenize(source))
    node = parser.expr()
    if parser.peek().kind != "eof":
        raise SyntaxError(f"unexpected {parser.peek().text!r} at {parser.peek().pos}")
    return node


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def at(self, text: str) -> bool:
        tok = self.tokens[self.pos]
        return tok.text == text and (tok.kind == "op" or (tok.kind == "ident" and text == "in"))

    def expect(self, text: str) -> None:
        if not self.at(text):
            tok = self.peek()
            raise SyntaxError(f"expected {text!r}, got {tok.text!r} at {tok.pos}")
        self.pos += 1

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise SyntaxError("expression nested too deeply")
        cond = self.binary(0)
        if self.at("?"):
            self.next()
            then = self.binary(0)
            self.expect(":")
            cond = Cond(cond, then, self.expr())
        self.depth -= 1
        return cond

    def binary(self, min_level: int) -> Node:
        # precedence climbing: one frame per operator level actually used
        left = self.unary()
        while True:
            tok = self.peek()
            level = _LEVEL_OF.get(tok.text) if tok.kind in ("op", "ident") else None
            if level is None or level < min_level:
                return left
            self.next()
            left = Binary(tok.text, left, self.binary(level + 1))

    def unary(self) -> Node:
        ops: list[str] = []
        while self.at("!") or self.at("-"):
            ops.append(self.next().text)
        node = self.member()
        for op in reversed(ops):
            node = Unary(op, node)
        return node

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.at("."):
                self.next()
                tok = self.next()
                if tok.kind != "ident" or tok.text in _KEYWORDS:
                    raise SyntaxError(f"expected a field name at {tok.pos}")
                if self.at("("):
                    node = Call(tok.text, self.arguments(")"), node)
                else:
                    node = Select(node, tok.text)
            elif self.at("["):
                self.next()
                index = self.expr()
                self.expect("]")
                node = Index(node, index)
            else:
                return node

    def arguments(self, close: str) -> tuple[Node, ...]:
        self.next()  # the opening bracket
        items: list[Node] = []
        while not self.at(close):
            items.append(self.expr())
            if not self.at(","):
                break
            self.next()
        self.expect(close)
        return tuple(items)

    def primary(self) -> Node:
        tok = self.peek()
        if tok.kind in ("int", "uint", "float", "string", "bytes"):
            self.next()
            return Lit(tok.kind, tok.value, tok.text)
        if tok.kind == "ident":
            self.next()
            if tok.text in _KEYWORDS:
                kind, value = _KEYWORDS[tok.text]
                return Lit(kind, value, tok.text)
            if tok.text == "in":
                raise SyntaxError(f"unexpected 'in' at {tok.pos}")
            if self.at("("):
                return Call(tok.text, self.arguments(")"))
            if self.at("{"):
                raise SyntaxError("message construction is not supported")
            return Ident(tok.text)
        if self.at("("):
            self.next()
            node = self.expr()
            self.expect(")")
            return node
        if self.at("["):
            return ListLit(self.arguments("]"))
        if self.at("{"):
            self.next()
            entries: list[tuple[Node, Node]] = []
            while not self.at("}"):
                key = self.expr()
                self.expect(":")
                entries.append((key, self.expr()))
                if not self.at(","):
                    break
                self.next()
            self.expect("}")
            return MapLit(tuple(entries))
        raise SyntaxError(f"unexpected {tok.text or 'end of input'!r} at {tok.pos}")


def emit(node: Node) -> str:
    """CEL source text for ``node``."""
    if isinstance(node, Lit):
        return node.text
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Select):
        return f"{_target(node.operand)}.{node.field}"
    if isinstance(node, Index):
        return f"{_target(node.operand)}[{emit(node.index)}]"
    if isinstance(node, Call):
        args = ", ".join(emit(a) for a in node.args)
        if node.target is None:
            return f"{node.name}({args})"
        return f"{_target(node.target)}.{node.name}({args})"
    if isinstance(node, Unary):
        return f"{node.op}{_operand(node.operand)}"
    if isinstance(node, Binary):
        return f"{_operand(node.left)} {node.op} {_operand(node.right)}"
    if isinstance(node, Cond):
        return f"{_operand(node.cond)} ? {_operand(node.then)} : {_operand(node.other)}"
    if isinstance(node, ListLit):
        return "[" + ", ".join(emit(i) for i in node.items) + "]"
    return "{" + ", ".join(f"{emit(k)}: {emit(v)}" for k, v in node.entries) + "}"


def _operand(node: Node) -> str:
    text = emit(node)
    return f"({text})" if isinstance(node, Unary | Binary | Cond) else text


def _target(node: Node) -> str:
    text = emit(node)
    if isinstance(node, Unary | Binary | Cond) or text.startswith("-"):
        return f"({text})"
    return text


def free_names(node: Node, bound: frozenset[str] = frozenset()) -> set[str]:
    """Identifiers referenced by ``node`` that no comprehension macro binds."""
    found: set[str] = set()

    def walk(n: Node, bound: frozenset[str]) -> None:
        if isinstance(n, Ident):
            if n.name not in bound:
                found.add(n.name)
        elif isinstance(n, Call):
            if n.target is not None:
                walk(n.target, bound)
            args, inner = macro_scope(n, bound)
            for a in args:
                walk(a, inner)
        else:
            for child in children(n):
                walk(child, bound)

    walk(node, bound)
    return found


def macro_scope(call: Call, bound: frozenset[str]) -> tuple[tuple[Node, ...], frozenset[str]]:
    """The arguments of ``call`` to visit and the names bound while visiting them."""
    if call.target is not None and call.name in MACROS and call.args:
        first = call.args[0]
        if isinstance(first, Ident):
            return call.args[1:], bound | {first.name}
    return call.args, bound


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Select):
        return (node.operand,)
    if isinstance(node, Index):
        return (node.operand, node.index)
    if isinstance(node, Call):
        return node.args if node.target is None else (node.target, *node.args)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Cond):
        return (node.cond, node.then, node.other)
    if isinstance(node, ListLit):
        return node.items
    if isinstance(node, MapLit):
        return tuple(x for pair in node.entries for x in pair)
    return ()


def calls(node: Node) -> set[str]:
    """Names of every function or method called in ``node``."""
    found: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Call):
            found.add(n.name)
        stack.extend(children(n))
    return found


def transform(
    node: Node,
    replace: Callable[[Node, frozenset[str]], Node | None],
    bound: frozenset[str] = frozenset(),
) -> Node:
    """Rebuild ``node`` bottom-up, substituting ``replace(n, bound)`` where it is not None.

    ``bound`` holds the names comprehension macros bind at ``n``, so a callback can tell a
    free variable from a macro's loop variable of the same name.
    """
    new = replace(node, bound)
    if new is not None:
        return new

    def go(n: Node) -> Node:
        return transform(n, replace, bound)

    if isinstance(node, Select):
        return Select(go(node.operand), node.field)
    if isinstance(node, Index):
        return Index(go(node.operand), go(node.index))
    if isinstance(node, Call):
        target = None if node.target is None else go(node.target)
        visit, inner = macro_scope(node, bound)
        head = node.args[: len(node.args) - len(visit)]
        rest = tuple(transform(a, replace, inner) for a in visit)
        return Call(node.name, head + rest, target)
    if isinstance(node, Unary):
        return Unary(node.op, go(node.operand))
    if isinstance(node, Binary):
        return Binary(node.op, go(node.left), go(node.right))
    if isinstance(node, Cond):
        return Cond(go(node.cond), go(node.then), go(node.other))
    if isinstance(node, ListLit):
        return ListLit(tuple(go(i) for i in node.items))
    if isinstance(node, MapLit):
        return MapLit(tuple((go(k), go(v)) for k, v in node.entries))
    return node
