"""What an in-process execution reports: the run, its steps in order, and spies on each step."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ..errors import StepwiseError
from ..sdk.event import Event

RunStatus = Literal["Running", "Completed", "Failed", "Cancelled"]


class UnmockedStepError(StepwiseError):
    """A step would leave the process (``fetch``, ``step.ai``, ``invoke``) and has no mock."""


class StepNotReachedError(StepwiseError):
    """``execute_step`` ended without the run reaching the step."""


class RunCancelledError(StepwiseError):
    """The run was cancelled (``cancel_on``, ``timeouts``); ``RunResult.error`` holds it."""


@dataclass(slots=True)
class SpyCall:
    """One execution of a step: the tool's arguments (after the step ID) and how it went."""

    tool: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    attempt: int
    index: int = 0
    """Which occurrence of the step ID in the run (0 for the first, 1 for ``"id:1"``...)."""
    mocked: bool = False
    output: Any = None
    error: BaseException | None = None
    fn: Callable[..., Any] | None = None
    """The function a ``step.run`` got (its ``args`` are the function's arguments)."""


@dataclass(slots=True)
class StepSpy:
    """Every execution of one step ID: ``calls`` counts them (each retry counts)."""

    id: str
    call_args_list: list[SpyCall] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.call_args_list)

    @property
    def called(self) -> bool:
        return bool(self.call_args_list)

    @property
    def call_args(self) -> SpyCall | None:
        """The latest execution."""
        return self.call_args_list[-1] if self.call_args_list else None

    def assert_called_once_with(self, *args: Any, **kwargs: Any) -> None:
        assert self.calls == 1, f"step {self.id!r} ran {self.calls} times, not once"
        call = self.call_args_list[0]
        assert (call.args, call.kwargs) == (args, kwargs), (
            f"step {self.id!r} got {call.args!r} {call.kwargs!r}, not {args!r} {kwargs!r}"
        )


class Spies(Mapping[str, StepSpy]):
    """Spies by step ID; a step that never ran has an empty spy (``calls == 0``)."""

    def __init__(self) -> None:
        self._spies: dict[str, StepSpy] = {}

    def record(self, step_id: str, call: SpyCall) -> SpyCall:
        self._spies.setdefault(step_id, StepSpy(step_id)).call_args_list.append(call)
        return call

    def __getitem__(self, step_id: str) -> StepSpy:
        return self._spies.get(step_id) or StepSpy(step_id)

    def __contains__(self, step_id: object) -> bool:
        return step_id in self._spies

    def __iter__(self) -> Iterator[str]:
        return iter(self._spies)

    def __len__(self) -> int:
        return len(self._spies)

    def __repr__(self) -> str:
        return f"Spies({ {k: v.calls for k, v in self._spies.items()} })"


@dataclass(slots=True)
class StepRecord:
    """A step that ended, in the order steps ended."""

    id: str
    hashed_id: str
    kind: str
    """The tool: ``run``, ``sleep``, ``sleep_until``, ``wait_for_event``, ``invoke``, ..."""
    output: Any
    """What user code got back (``None`` for a sleep or a wait that timed out)."""
    error: dict[str, Any] | None
    """The error the step failed with for good, as user code's ``StepError`` carries it."""
    attempts: int
    started_at: datetime
    ended_at: datetime
    timed_out: bool = False
    mocked: bool = False
    invoked: RunResult | None = None
    """An invoke served by a function given to the engine: the child run."""

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True, slots=True)
class SleepRecord:
    """A sleep the engine skipped: how long the run would have slept, and until when."""

    id: str
    duration: timedelta
    until: datetime
    tool: str = "sleep"


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One line of the run's history, in the server's words (``GET /v1/runs/{id}/history``)."""

    kind: str
    at: datetime
    step_id: str | None = None
    name: str | None = None
    attempt: int | None = None
    data: Any = None


@dataclass(slots=True)
class RunState:
    """The run as the server would hold it."""

    status: RunStatus
    memos: dict[str, Any]
    """Step results by hashed step ID, exactly as a call request carries them."""
    stack: list[str]
    """Hashed step IDs in the order their results were stored."""
    started_at: datetime | None
    ended_at: datetime | None
    requests: int
    """How many calls the function got (each replays it from the top)."""
    output: Any = None
    """The run's output as the server stores it (the error body for a failed run)."""


@dataclass(slots=True)
class RunResult:
    """One execution of a function by the test engine."""

    run_id: str
    function_id: str
    result: Any
    """What the function returned (``None`` unless ``status == "Completed"``)."""
    error: BaseException | None
    """What ended the run otherwise: the exception user code raised last, a
    ``RunCancelledError``, or a ``StepError`` for a failure the server decided."""
    steps: list[StepRecord]
    state: RunState
    history: list[HistoryItem]
    sleeps: list[SleepRecord]
    sent_events: list[Event]
    """Events ``step.send_event`` would have sent (recorded, not sent)."""
    spies: Spies
    events: list[dict[str, Any]]
    """The triggering events, as the function received them."""
    created_at: datetime

    @property
    def status(self) -> RunStatus:
        return self.state.status

    @property
    def elapsed(self) -> timedelta:
        """Virtual time from the event to the run's end (or to where execution stopped)."""
        end = self.state.ended_at or (self.history[-1].at if self.history else self.created_at)
        return end - self.created_at

    def step(self, step_id: str, index: int = 0) -> StepRecord:
        """The ended step with this ID (its ``index``-th occurrence); ``KeyError`` if none."""
        found = [s for s in self.steps if s.id == step_id]
        if len(found) <= index:
            raise KeyError(f"no ended step {step_id!r} (#{index}); steps: {self.step_ids}")
        return found[index]

    @property
    def step_ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def outputs(self) -> dict[str, Any]:
        """Each ended step's output by step ID (the first occurrence of repeated IDs)."""
        out: dict[str, Any] = {}
        for s in self.steps:
            out.setdefault(s.id, s.output)
        return out


@dataclass(frozen=True, slots=True)
class StepResult:
    """What ``execute_step`` returns: the step, and the run up to it."""

    step: StepRecord
    run: RunResult

    @property
    def output(self) -> Any:
        return self.step.output

    @property
    def error(self) -> dict[str, Any] | None:
        return self.step.error
