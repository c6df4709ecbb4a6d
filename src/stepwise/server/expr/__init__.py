"""CEL expressions in Inngest's dialect (trigger filters for now).

Built on the ``cel`` package (``common-expression-language``), which compares ints and
floats as numbers. One dialect gap remains: where Inngest reads a missing field as null,
``cel`` raises; we treat that as "the expression does not hold", which is right for
comparisons with literals (the common case) but not for ``x == null`` on a missing field.
Compiled programs are cached by source text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cel


class ExpressionError(ValueError):
    """An expression does not compile, or cannot be evaluated on the given input."""


@lru_cache(maxsize=4096)
def _compile(source: str) -> Any:
    try:
        return cel.compile(source)
    except Exception as exc:  # the binding raises plain exceptions for syntax errors
        raise ExpressionError(f"invalid expression {source!r}: {exc}") from exc


def check(source: str) -> None:
    """Raise ``ExpressionError`` if ``source`` does not compile."""
    _compile(source)


def evaluate(source: str, variables: dict[str, Any]) -> Any:
    program = _compile(source)
    try:
        return program.execute(variables)
    except KeyError:
        return False  # a missing field: see the module docstring
    except Exception as exc:
        raise ExpressionError(f"cannot evaluate {source!r}: {exc}") from exc
