"""Plain records that cross the storage boundary. Frozen: the engine builds, the store writes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class RunStatus(enum.StrEnum):
    """Run statuses, spelled as the REST API reports them."""

    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    SKIPPED = "Skipped"

    @property
    def terminal(self) -> bool:
        return self not in (RunStatus.SCHEDULED, RunStatus.RUNNING)


class JobKind(enum.StrEnum):
    CALL = "call"  # call the SDK: discovery ("step") or one targeted step
    WAKE = "wake"  # a sleep ended: memoize null, then discovery
    CRON = "cron"  # a cron tick for one function


@dataclass(frozen=True, slots=True)
class AppRecord:
    id: str
    name: str
    url: str
    sdk: str
    framework: str
    checksum: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class FunctionRecord:
    id: str  # internal UUID
    app_id: str
    slug: str  # composite "<app>-<fn>" id the SDK knows
    name: str
    config: dict[str, Any]
    url: str
    created_at: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    internal_id: str
    id: str  # the user's id, or the internal id when none was given
    name: str
    data: dict[str, Any]
    user: dict[str, Any]
    ts: int
    v: str | None
    received_at: int

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "data": self.data,
            "id": self.id,
            "ts": self.ts,
            "user": self.user,
        }
        if self.v is not None:
            out["v"] = self.v
        return out


@dataclass(frozen=True, slots=True)
class NewJob:
    run_id: str | None
    kind: JobKind
    run_at: int
    step_id: str = "step"
    attempt: int = 0
    key: str | None = None  # de-duplication: a second job with the same key is not added
    payload: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    run_id: str | None
    kind: JobKind
    step_id: str
    attempt: int
    run_at: int
    lease: str
    key: str | None
    payload: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create with its first job, unless ``idempotency_key`` was seen in 24 h."""

    id: str
    function_id: str
    function_slug: str
    event_ids: tuple[str, ...]  # internal ids, first = the triggering event
    idempotency_key: str
    created_at: int
    cron: str | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    function_id: str
    function_slug: str
    event_ids: tuple[str, ...]
    status: RunStatus
    created_at: int
    started_at: int | None
    ended_at: int | None
    output: Any
    error: dict[str, Any] | None
    request_version: int
    force_step_plan: bool
    cron: str | None


@dataclass(frozen=True, slots=True)
class StepMemo:
    step_id: str
    seq: int
    memo: Any


@dataclass(frozen=True, slots=True)
class RunState:
    """Everything needed to call the SDK for one run."""

    run: RunRecord
    events: list[EventRecord]
    steps: list[StepMemo]  # in completion order


@dataclass(frozen=True, slots=True)
class RunUpdate:
    status: RunStatus | None = None
    output: Any = None
    has_output: bool = False
    error: dict[str, Any] | None = None
    request_version: int | None = None
    force_step_plan: bool | None = None
    started_at: int | None = None  # set once: a later value never overwrites the first
    ended_at: int | None = None


class HistoryKind(enum.StrEnum):
    RUN_STARTED = "RunStarted"
    STEP_COMPLETED = "StepCompleted"
    STEP_ERRORED = "StepErrored"  # an attempt failed; it will be retried
    STEP_FAILED = "StepFailed"  # no attempts left (or not retriable)
    STEP_PLANNED = "StepPlanned"
    SLEEP_STARTED = "SleepStarted"
    SLEEP_ENDED = "SleepEnded"
    ATTEMPT_FAILED = "AttemptFailed"  # the function request itself failed
    RUN_COMPLETED = "RunCompleted"
    RUN_FAILED = "RunFailed"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    kind: HistoryKind
    at: int
    step_id: str | None = None
    name: str | None = None
    attempt: int | None = None
    data: Any = None


@dataclass(frozen=True, slots=True)
class Ingest:
    """Events to store and the runs they start, written together."""

    events: list[EventRecord] = field(default_factory=list)
    runs: list[NewRun] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Transition:
    """Everything one executed job changes, committed in one transaction.

    If the job's lease was lost (another worker took it over), nothing is written.
    """

    job_id: int
    lease: str
    run_id: str | None
    memos: list[tuple[str, Any]] = field(default_factory=list)  # (step_id, memo)
    run_update: RunUpdate | None = None
    new_jobs: list[NewJob] = field(default_factory=list)
    retry_at: int | None = None  # keep the job, attempt+1, due at this time
    reschedule_at: int | None = None  # keep the job, same attempt, due at this time
    become_call_at: int | None = None  # a wake job turning into a discovery call
    ingest: Ingest | None = None
    clear_run_jobs: bool = False  # the run ended: drop its other pending jobs
    history: list[HistoryEntry] = field(default_factory=list)


class LeaseLost(Exception):
    """The job was no longer ours when its transition was committed."""
