"""``ctx.deps`` and ``ctx.event.data`` are typed: mypy flags a wrong access in a handler."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET = """
from typing import Any, Protocol

from pydantic import BaseModel

import stepwise


class Db(Protocol):
    def count(self) -> int: ...


class AppDeps(Protocol):
    db: Db


class Signup(BaseModel):
    email: str


client = stepwise.Stepwise("app", middleware=[stepwise.Dependencies(db=object())])


@client.create_function(fn_id="f", trigger=stepwise.TriggerEvent(event="x"))
async def f(ctx: stepwise.Context[AppDeps, Signup]) -> int:
    email: str = ctx.event.data.email
    ctx.event.data.phone  # not a field of Signup
    ctx.deps.cache  # not a dependency
    return ctx.deps.db.count() + len(email)


@client.create_function(fn_id="g", trigger=stepwise.TriggerEvent(event="x"))
def g(ctx: stepwise.SyncContext[AppDeps]) -> str:
    return ctx.deps.db.count()  # an int, not a str


@client.create_function(fn_id="h", trigger=stepwise.TriggerEvent(event="x"))
async def h(ctx: stepwise.Context) -> Any:
    return ctx.deps.anything, ctx.event.data["x"]
"""


def test_mypy_checks_dependencies_and_event_data(tmp_path: Path) -> None:
    source = tmp_path / "handlers.py"
    source.write_text(SNIPPET)
    out, err, status = api.run(
        ["--strict", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", str(source)]
    )
    assert status == 1, err
    errors = sorted(line.split(": error: ", 1)[1] for line in out.splitlines())
    assert errors == [
        '"AppDeps" has no attribute "cache"  [attr-defined]',
        '"Signup" has no attribute "phone"  [attr-defined]',
        'Incompatible return value type (got "int", expected "str")  [return-value]',
    ], out
