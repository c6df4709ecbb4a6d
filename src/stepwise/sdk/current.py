"""What is running right now, as context variables: the call, a step body, a parallel branch.

Context variables (not attributes) because the same step tools serve many concurrent
calls and branches: each asyncio task and each worker thread sees its own values.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .execution import Execution

ParallelMode = Literal["wait", "race"]

execution_var: ContextVar[Execution | None] = ContextVar("stepwise_execution", default=None)
"""The call whose handler is running in this task or thread."""

in_step_var: ContextVar[bool] = ContextVar("stepwise_in_step", default=False)
"""True inside the body of a ``step.run``: there, ``stepwise.fetch`` is a plain request."""

step_metadata_var: ContextVar[list[dict[str, Any]] | None] = ContextVar(
    "stepwise_step_metadata", default=None
)
"""Inside the body of a ``step.run``: the metadata updates that go out with its result."""


class BranchStopped(BaseException):
    """Ends one branch of a ``def`` handler's ``parallel`` at its first new step.

    Such branches run one after another in the handler's thread, so a branch cannot
    wait at its step the way a task can; it reports the step and gives way to the next.
    """


@dataclass(eq=False, slots=True)
class Branch:
    """One callable of ``ctx.step.parallel``, as the steps inside it see it."""

    mode: ParallelMode
    parent: Branch | None = None
    sequential: bool = False
    """A ``def`` handler's branch: stops with ``BranchStopped`` instead of waiting."""
    position: int = -1
    """Where, in the server's completion order, the latest memo this branch used sits."""
    blocked: bool = False
    """Some step in the branch waits for the server."""
    pending: list[str] = field(default_factory=list)
    """Hashed IDs of the new steps this branch (or a branch nested in it) reported."""
    changed: asyncio.Event | None = None
    """Set when ``blocked`` turns true, so a race can look at its branches again."""

    def lineage(self) -> list[Branch]:
        chain: list[Branch] = []
        branch: Branch | None = self
        while branch is not None:
            chain.append(branch)
            branch = branch.parent
        return chain

    def in_race(self) -> bool:
        return any(b.mode == "race" for b in self.lineage())


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one parallel branch ended: a value or an exception."""

    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


branch_var: ContextVar[Branch | None] = ContextVar("stepwise_branch", default=None)
