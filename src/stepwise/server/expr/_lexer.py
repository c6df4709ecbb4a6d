"""Tokenizer for the CEL subset that the dialect layer understands.

Tokens keep their source text (so literals can be written back unchanged) and, for
literals, their decoded Python value. Anything the tokenizer does not recognise raises
``SyntaxError``; callers decide whether that is fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# kinds: "int", "uint", "float", "string", "bytes", "ident", "op", "eof"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    value: Any
    pos: int


_OPERATORS = (
    "&&",
    "||",
    "==",
    "!=",
    "<=",
    ">=",
    "<",
    ">",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "?",
    ":",
    ".",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
)
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "?": "?",
    '"': '"',
    "'": "'",
    "`": "`",
}
_HEX = set("0123456789abcdefABCDEF")
_IDENT_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | set("0123456789")
_DIGITS = set("0123456789")


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch in " \t\n\r\f":
            i += 1
            continue
        if source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        start = i
        if ch in _DIGITS or (ch == "." and i + 1 < n and source[i + 1] in _DIGITS):
            tok, i = _number(source, i)
            tokens.append(tok)
            continue
        if ch in _IDENT_START:
            while i < n and source[i] in _IDENT_CHARS:
                i += 1
            word = source[start:i]
            prefix = word.lower()
            if i < n and source[i] in "'\"" and prefix in ("r", "b", "rb", "br"):
                tok, i = _string(source, start, i, raw="r" in prefix, as_bytes="b" in prefix)
                tokens.append(tok)
            else:
                tokens.append(Token("ident", word, word, start))
            continue
        if ch in "'\"":
            tok, i = _string(source, start, i, raw=False, as_bytes=False)
            tokens.append(tok)
            continue
        for op in _OPERATORS:
            if source.startswith(op, i):
                tokens.append(Token("op", op, op, start))
                i += len(op)
                break
        else:
            raise SyntaxError(f"unexpected character {ch!r} at {i}")
    tokens.append(Token("eof", "", None, n))
    return tokens


def _number(source: str, i: int) -> tuple[Token, int]:
    start, n = i, len(source)
    if source.startswith(("0x", "0X"), i):
        i += 2
        while i < n and source[i] in _HEX:
            i += 1
        if i == start + 2:
            raise SyntaxError("bad hex literal")
        value = int(source[start + 2 : i], 16)
        if i < n and source[i] in "uU":
            return Token("uint", source[start : i + 1], value, start), i + 1
        return Token("int", source[start:i], value, start), i
    while i < n and source[i] in _DIGITS:
        i += 1
    is_float = False
    if i + 1 < n and source[i] == "." and source[i + 1] in _DIGITS:
        is_float = True
        i += 1
        while i < n and source[i] in _DIGITS:
            i += 1
    if i < n and source[i] in "eE":
        j = i + 1
        if j < n and source[j] in "+-":
            j += 1
        if j < n and source[j] in _DIGITS:
            is_float = True
            i = j
            while i < n and source[i] in _DIGITS:
                i += 1
    text = source[start:i]
    if is_float:
        return Token("float", text, float(text), start), i
    if i < n and source[i] in "uU":
        return Token("uint", source[start : i + 1], int(text), start), i + 1
    return Token("int", text, int(text), start), i


def _string(source: str, start: int, i: int, *, raw: bool, as_bytes: bool) -> tuple[Token, int]:
    quote = source[i : i + 3] if source[i : i + 3] in ('"""', "'''") else source[i]
    i += len(quote)
    n = len(source)
    parts: list[str] = []
    data = bytearray()  # for bytes literals: \x and octal escapes are bytes, the rest UTF-8
    while True:
        if i >= n:
            raise SyntaxError("unterminated string literal")
        if source.startswith(quote, i):
            i += len(quote)
            break
        ch = source[i]
        if ch in "\r\n" and len(quote) == 1:
            raise SyntaxError("newline in string literal")
        if ch == "\\" and not raw:
            is_byte = source[i + 1 : i + 2] in ("x", "X", "0", "1", "2", "3")
            decoded, i = _escape(source, i + 1)
            if as_bytes:
                data.extend(bytes([ord(decoded)]) if is_byte else decoded.encode("utf-8"))
            else:
                parts.append(decoded)
            continue
        if as_bytes:
            data.extend(ch.encode("utf-8"))
        else:
            parts.append(ch)
        i += 1
    if as_bytes:
        return Token("bytes", source[start:i], bytes(data), start), i
    return Token("string", source[start:i], "".join(parts), start), i


def _escape(source: str, i: int) -> tuple[str, int]:
    if i >= len(source):
        raise SyntaxError("unterminated escape")
    ch = source[i]
    if ch in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[ch], i + 1
    width = {"x": 2, "X": 2, "u": 4, "U": 8}.get(ch)
    if width is not None:
        digits = source[i + 1 : i + 1 + width]
        if len(digits) != width or not set(digits) <= _HEX:
            raise SyntaxError("bad hex escape")
        code = int(digits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise SyntaxError("bad unicode escape")
        return chr(code), i + 1 + width
    if ch in "0123":
        digits = source[i : i + 3]
        if len(digits) != 3 or not set(digits) <= set("01234567"):
            raise SyntaxError("bad octal escape")
        return chr(int(digits, 8)), i + 3
    raise SyntaxError(f"bad escape \\{ch}")
