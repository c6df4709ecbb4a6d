"""What the test engine writes down about a run: history, ended steps, sleeps, sent events,
and spies on every step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import StepError
from ..protocol import new_ulid
from ..sdk.event import Event
from ..sdk.execution import Execution, StepCall
from ..server.store.records import HistoryKind
from .mocks import StepRequest
from .results import HistoryItem, RunResult, SleepRecord, Spies, SpyCall, StepRecord


def dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def output_of(memo: Any) -> tuple[Any, dict[str, Any] | None]:
    """``(output, error)`` of a memo: what user code gets back, or the error it raises."""
    try:
        return Execution.replay(_memo_call(memo)), None
    except StepError:
        error = memo["error"]
        return None, error if isinstance(error, dict) else {"message": str(error)}


def error_from(error: Any) -> StepError:
    """The ``StepError`` user code would see for an error object."""
    try:
        Execution.replay(_memo_call({"error": error}))
    except StepError as exc:
        return exc
    raise AssertionError("a memo with an error always raises")


def _memo_call(memo: Any) -> StepCall:
    # The SDK's own reading of a memo, so a test sees what user code would.
    return StepCall(user_id="", hashed_id="", index=0, memo=memo)


@dataclass(slots=True)
class StepInfo:
    """What the engine knows of one step (by hashed ID) before it ends."""

    user_id: str
    kind: str
    index: int
    started_at: int
    attempts: int = 0
    mocked: bool = False
    timed_out: bool = False
    spy: SpyCall | None = None
    invoked: RunResult | None = None


class RunRecords:
    """The records of one run; ``clock`` tells the virtual time of each."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self.history: list[HistoryItem] = []
        self.steps: list[StepRecord] = []
        self.sleeps: list[SleepRecord] = []
        self.sent_events: list[Event] = []
        self.spies = Spies()
        self.info: dict[str, StepInfo] = {}

    def entry(
        self,
        kind: HistoryKind,
        step_id: str | None = None,
        name: str | None = None,
        attempt: int | None = None,
        data: Any = None,
    ) -> HistoryItem:
        """A history line, in the server's words, at the current virtual time."""
        return HistoryItem(kind.value, dt(self._clock()), step_id, name, attempt, data)

    def info_for(self, hashed_id: str, user_id: str, kind: str, index: int) -> StepInfo:
        info = self.info.get(hashed_id)
        if info is None:
            info = self.info[hashed_id] = StepInfo(user_id, kind, index, self._clock())
        return info

    def step_ended(self, hashed_id: str, memo: Any) -> None:
        info = self.info.get(hashed_id) or StepInfo(hashed_id, "run", 0, self._clock())
        output, error = output_of(memo)
        self.steps.append(
            StepRecord(
                id=info.user_id,
                hashed_id=hashed_id,
                kind=info.kind,
                output=output,
                error=error,
                attempts=max(info.attempts, 1),
                started_at=dt(info.started_at),
                ended_at=dt(self._clock()),
                timed_out=info.timed_out,
                mocked=info.mocked,
                invoked=info.invoked,
            )
        )
        # A step.run's spy saw its body's own outcome; other steps' outcome is their result.
        if info.spy is not None and info.kind not in ("run", "send_event"):
            info.spy.output = output
            if error is not None:
                info.spy.error = error_from(error)

    def spy(
        self,
        info: StepInfo,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        attempt: int,
        *,
        mocked: bool,
        fn: Callable[..., Any] | None = None,
    ) -> SpyCall:
        """One execution of a step, on its spy."""
        info.attempts += 1
        call = SpyCall(info.kind, args, kwargs, attempt, info.index, mocked=mocked, fn=fn)
        info.spy = self.spies.record(info.user_id, call)
        return call

    def spy_request(self, info: StepInfo, request: StepRequest) -> SpyCall:
        return self.spy(info, request.args, request.kwargs, request.attempt, mocked=info.mocked)

    def sent(self, events: list[dict[str, Any]]) -> list[str]:
        """Events ``send_event`` sent: kept, with the IDs a server would have given them."""
        ids = []
        for raw in events:
            event_id = str(raw.get("id") or new_ulid(self._clock()))
            self.sent_events.append(Event.from_wire({**raw, "id": event_id}))
            ids.append(event_id)
        return ids
