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


class RunHold(enum.StrEnum):
    """What a Running run is doing while nothing of it runs: a listing can ask for these."""

    SLEEPING = "Sleeping"  # a sleep's wake-up is queued, and no call to its app
    WAITING = "Waiting"  # it holds a wait, invoke or signal pause, and nothing is queued


class JobKind(enum.StrEnum):
    CALL = "call"  # call the SDK: discovery ("step") or one targeted step
    WAKE = "wake"  # a sleep ended: memoize null, then discovery
    CRON = "cron"  # a cron tick for one function
    MATCH = "match"  # an event arrived whose name has pauses: find and resume them
    PAUSE_TIMEOUT = "pause_timeout"  # a wait, invoke or signal pause expires
    RUN_TIMEOUT = "run_timeout"  # timeouts.start / timeouts.finish of a run
    GATEWAY = "gateway"  # step.fetch: the server makes the HTTP request
    AI_GATEWAY = "ai_gateway"  # step.ai.infer: the server makes the provider's request
    CANCEL_BULK = "cancel_bulk"  # a bulk cancellation works through its runs
    DEBOUNCE = "debounce"  # a debounced key went quiet: start its run
    BATCH = "batch"  # a batch timed out: start its run


class PauseKind(enum.StrEnum):
    WAIT = "wait"
    CANCEL = "cancel"
    INVOKE = "invoke"
    SIGNAL = "signal"


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
    # A send retried with the same id seed repeats the internal id: the store numbers the
    # copies it receives from 0 and keeps them all. Only copy 0 starts runs.
    copy: int = 0
    # What the sender gave as ``meta``, its session layers resolved (``protocol.sessions``).
    meta: dict[str, Any] | None = None

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
        if self.meta is not None:
            out["meta"] = self.meta
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
    # Dispatches of this job that ended without an answer (a failed attempt, a lost
    # lease): SDKs echo it in checkpoints, so a late writer from an old dispatch is fenced.
    generation: int = 0
    # Times the server itself failed while handling this job (not the app's failures).
    faults: int = 0


@dataclass(frozen=True, slots=True)
class NewPause:
    key: str  # unique; a second pause with the same key is not added
    run_id: str
    kind: PauseKind
    created_at: int
    step_id: str | None = None  # the step whose memo the pause resolves
    event_name: str | None = None
    expression: str | None = None  # CEL over ``async`` only (``event.*`` interpolated)
    index_path: str | None = None  # a lifted equality term: async.<path> == value
    index_value: str | None = None
    signal: str | None = None
    # A second wait for a taken signal: True takes the signal over (the earlier waiter
    # keeps waiting until its own timeout), False refuses (the store raises SignalTaken).
    steal_signal: bool = False
    expires_at: int | None = None
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    id: int
    key: str
    run_id: str
    kind: PauseKind
    created_at: int
    step_id: str | None
    event_name: str | None
    expression: str | None
    signal: str | None
    expires_at: int | None
    data: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` runs per ``period_ms`` for ``key`` (GCRA); over it, the run is skipped."""

    key: str
    limit: int
    period_ms: int


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most ``limit`` run starts per ``period_ms`` for ``key``, plus ``burst``; later
    starts wait their turn (never dropped)."""

    key: str
    limit: int
    period_ms: int
    burst: int = 0


@dataclass(frozen=True, slots=True)
class Debounce:
    """Hold the run: start it with the key's latest event once ``period_ms`` passes with no
    new event, or ``timeout_ms`` after the first, whichever is sooner."""

    key: str
    period_ms: int
    timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Collect events per key; one run gets them all, at ``max_size`` or ``timeout_ms``."""

    key: str
    max_size: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create with its first job, unless ``idempotency_key`` was seen in 24 h.

    ``pauses`` (cancel_on) and ``jobs`` (timeouts) are created with it, or not at all.
    """

    id: str
    function_id: str
    function_slug: str
    event_ids: tuple[str, ...]  # internal ids, first = the triggering event
    idempotency_key: str
    created_at: int
    cron: str | None = None
    correlation_id: str | None = None  # set on runs started by an invoke
    pauses: tuple[NewPause, ...] = ()
    jobs: tuple[NewJob, ...] = ()
    # Flow control, checked atomically with the run's creation:
    skip_reason: str | None = None  # decided before the store (e.g. a key that failed)
    rate_limit: RateLimit | None = None
    singleton_key: str | None = None  # skip the run while one with this key is active
    singleton_cancels: bool = False  # ...or, in "cancel" mode, cancel that one and start
    start_at: int | None = None  # the first job's due time (priority shifts it)
    concurrency: tuple[tuple[str, int], ...] = ()  # (key, limit): steps executing at once
    run_concurrency: tuple[tuple[str, int], ...] = ()  # (key, limit): runs started, not ended
    throttle: Throttle | None = None
    debounce: Debounce | None = None  # not created now: held by the debouncer
    batch: Batch | None = None  # not created now: appended to a batch
    # A rerun: the run it reruns, and the results it starts with (in the order they are
    # given, as if settled before its first call), written with the run or not at all.
    original_run_id: str | None = None
    seed_steps: tuple[Settled, ...] = ()
    # A run its caller already runs (a durable endpoint's handler): created Running at
    # this time, with no first call; the server calls it only once it goes async.
    started_at: int | None = None


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
    correlation_id: str | None = None
    skip_reason: str | None = None
    original_run_id: str | None = None  # set on a rerun: the run it reruns


@dataclass(frozen=True, slots=True)
class StepMemo:
    step_id: str
    seq: int
    memo: Any


class DeferStatus(enum.StrEnum):
    """Where a defer stands: started when its run ends, or never (aborted, rejected)."""

    AFTER_RUN = "after_run"
    ABORTED = "aborted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class DeferRecord:
    """A run that a run asked for (JS SDK 4.x ``defer``), started when the asking run ends.

    ``hashed_id`` is the defer's id as the SDK hashes it, one record per id and run.
    ``input`` becomes the deferred event's data; ``meta`` holds the session layers the
    deferred event resolves. An aborted or rejected defer is kept, so that a replay of
    the run does not add it again, but never starts.
    """

    hashed_id: str
    fn_slug: str
    status: DeferStatus
    user_id: str | None = None
    input: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeferChange:
    """A ``DeferAdd`` (``record``, status after_run or rejected) or ``DeferAbort``
    (``abort``: the record, if any, becomes aborted; none yet is stored aborted) to apply.

    An add is stored once (the first wins) and only while the run has fewer than
    ``max_count`` defers and their inputs stay within ``max_input_bytes``; otherwise
    nothing is stored and ``refused`` is written to the run's history instead of
    ``history``, which is written only when the change changed something.
    """

    record: DeferRecord
    at: int
    abort: bool = False
    history: tuple[HistoryEntry, ...] = ()
    max_count: int = 0
    max_input_bytes: int = 0
    refused: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class RunState:
    """Everything needed to call the SDK for one run."""

    run: RunRecord
    events: list[EventRecord]
    steps: list[StepMemo]  # in completion order
    state_bytes: int = 0  # the size of every stored memo, for the run-state limit
    defers: list[DeferRecord] = field(default_factory=list)  # in the order they were added


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
    RUN_CANCELLED = "RunCancelled"
    WAIT_STARTED = "WaitStarted"  # wait_for_event, wait_for_signal
    WAIT_ENDED = "WaitEnded"
    INVOKE_STARTED = "InvokeStarted"
    INVOKE_ENDED = "InvokeEnded"
    DEFER_ADDED = "DeferAdded"  # a run to start when this one ends
    DEFER_ABORTED = "DeferAborted"
    DEFER_REJECTED = "DeferRejected"  # refused (a limit, a bad input): it will not start
    DEFER_STARTED = "DeferStarted"  # the run ended: the deferred event was sent
    METADATA = "Metadata"  # metadata set on the run or one of its steps


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    kind: HistoryKind
    at: int
    step_id: str | None = None
    name: str | None = None
    attempt: int | None = None
    data: Any = None


@dataclass(frozen=True, slots=True)
class Settled:
    """A step of a run got its result. The memo is written once; its history only with it."""

    step_id: str
    memo: Any
    history: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """A step the run now waits on: its jobs, pause, child run and history.

    Created only if the step has no result yet and is not already planned, so a reply
    computed before some results arrived can never start a finished step again.
    ``batch``: one of a parallel batch; the run goes on when the batch's last step settles.
    ``race``: the run goes on when this step settles, whatever else is open.
    """

    step_id: str
    jobs: tuple[NewJob, ...] = ()
    pause: NewPause | None = None
    ingest: Ingest | None = None
    history: tuple[HistoryEntry, ...] = ()
    batch: bool = False
    race: bool = False


@dataclass(frozen=True, slots=True)
class Ingest:
    """Events to store and the runs they start, written together."""

    events: list[EventRecord] = field(default_factory=list)
    runs: list[NewRun] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunChange:
    """Changes to one run that apply only while their guard holds.

    ``consume_pause``: only if this call deletes that pause (first to consume it wins).
    ``require_active``: only if the run is still Scheduled or Running.
    Used for resuming waits, invokes and signals, and for cancelling runs.
    """

    run_id: str
    consume_pause: str | None = None
    require_active: bool = True
    settled: list[Settled] = field(default_factory=list)
    continue_with: NewJob | None = None  # see Transition.continue_with
    new_jobs: list[NewJob] = field(default_factory=list)
    run_update: RunUpdate | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    ingest: Ingest | None = None
    end_run: bool = False  # the run ends: drop its jobs and pauses
    # Whose run this is, for this node's metrics when the change ends it; not stored.
    function_slug: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """Everything one executed job changes, committed in one transaction.

    If the job's lease was lost (another worker took it over), nothing is written.
    """

    job_id: int
    lease: str
    run_id: str | None
    settled: list[Settled] = field(default_factory=list)
    planned: list[PlannedStep] = field(default_factory=list)
    # Steps the job was meant to settle but the app no longer has (a targeted step that
    # disappeared): they stop holding their parallel batch open.
    abandoned: list[str] = field(default_factory=list)
    # The run's next call, added only if the fan-in rule says the run goes on after what
    # settled here (``server/flow/fanin.py``) and nothing new was planned.
    continue_with: NewJob | None = None
    run_update: RunUpdate | None = None
    new_jobs: list[NewJob] = field(default_factory=list)
    retry_at: int | None = None  # keep the job, attempt+1, due at this time
    reschedule_at: int | None = None  # keep the job, same attempt, due at this time
    ingest: Ingest | None = None
    clear_run_jobs: bool = False  # the run ended: drop its other pending jobs and pauses
    # The run's own history (started, an attempt failed), written before its steps' entries;
    # ``ending`` (completed, failed) is written after them.
    history: list[HistoryEntry] = field(default_factory=list)
    ending: HistoryEntry | None = None
    # Written just before ``ending``: what the run's end starts (its deferred runs).
    ending_notes: list[HistoryEntry] = field(default_factory=list)
    run_changes: list[RunChange] = field(default_factory=list)
    # A debounce fired with this (key, event id): its row goes, unless a newer event came.
    clear_debounce: tuple[str, str] | None = None
    # A batch timed out: start its run (key, batch id, now), unless it already started.
    flush_batch: tuple[str, str, int] | None = None
    # DeferAdd and DeferAbort ops of the reply, applied in order.
    defers: list[DeferChange] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DispatchFence:
    """The dispatch a checkpoint says it comes from: a job and the generation it was sent in.

    A checkpoint with a fence is saved only while that job still exists in that generation;
    once the job was retried, re-leased or finished, the dispatch is stale.
    """

    job_id: int
    generation: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Steps an SDK ran inside a call that is still open, saved before the call answers.

    ``settled`` are written in order, each once (a duplicate writes nothing); no open step
    is closed and no call is added: the SDK goes on inside the open call. A run still
    Scheduled becomes Running with ``started`` as its first history entry.
    """

    run_id: str
    settled: list[Settled]
    started: HistoryEntry
    fence: DispatchFence | None = None
    defers: list[DeferChange] = field(default_factory=list)


class CheckpointOutcome(enum.StrEnum):
    SAVED = "saved"
    NO_RUN = "no_run"
    RUN_ENDED = "run_ended"  # nothing written: the run already ended
    STALE = "stale"  # nothing written: the dispatch was superseded
    NOT_ENDPOINT = "not_endpoint"  # nothing written: the run is not a durable endpoint's


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """A durable endpoint's run (JS SDK 4.x ``inngest.endpoint()``): a run an SDK started
    inside an HTTP handler, and how the server goes on with it once it goes async.

    The server re-enters the run with ``method`` on ``url`` (the handler's URL with the
    original query), sending the original body (the run's event's ``data.body``) as
    ``content_type``. ``retries`` is the run's retry budget. ``token`` lets the original
    client read the run's output, ``stream_token`` its stream: each grants only what the
    rows beside it hold, so they are kept as they are (an idempotent retry of the start
    gets them again). ``stream_seq`` and ``stream_bytes`` count the stream's chunks.
    """

    run_id: str
    method: str
    url: str
    content_type: str
    retries: int
    token: str
    stream_token: str
    created_at: int
    stream_seq: int = 0
    stream_bytes: int = 0


@dataclass(frozen=True, slots=True)
class EndpointStart:
    """A durable endpoint's run and what its first checkpoint changes, written together.

    ``app`` and ``function`` are created as needed (an endpoint has no sync): an app
    already stored under ``app.name`` is kept, and ``function`` replaces a function of
    the same slug only in that app. ``run`` is created Running (``NewRun.started_at``)
    with ``event``, its history starting with ``RunStarted``; ``first`` is the transition
    of the handler's first checkpoint, for a call that has no job (``NO_JOB``).
    """

    app: AppRecord
    function: FunctionRecord
    event: EventRecord
    run: NewRun
    endpoint: EndpointRecord
    first: Transition


class EndpointOutcome(enum.StrEnum):
    CREATED = "created"
    REPEATED = "repeated"  # the same start again (its answer was lost): nothing written
    RUN_EXISTS = "run_exists"  # another run has this id: nothing written
    FUNCTION_TAKEN = "function_taken"  # another app's function has the slug: nothing written


class StreamOutcome(enum.StrEnum):
    APPENDED = "appended"
    NOT_ENDPOINT = "not_endpoint"  # no durable endpoint's run has this id
    FULL = "full"  # the run's stream would pass its limit: nothing written


# The job of a transition that answers no job: a durable endpoint's handler runs inside
# its client's request, and its checkpoints are the answers of a call nobody queued.
NO_JOB = 0


class LeaseLost(Exception):
    """The job was no longer ours when its transition was committed."""


class StoreInUse(Exception):
    """Another process holds the database that a single-node backend must own alone."""


class SignalTaken(Exception):
    """Another run took the signal a new wait wanted between the reply and its commit."""


@dataclass(frozen=True, slots=True)
class CancellationRecord:
    """A bulk cancellation: every active run of a function started inside a window."""

    id: str
    app_id: str
    function_slug: str
    started_before: int
    created_at: int
    started_after: int | None = None
    expression: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key for the REST API. The key itself is never stored: only its hash."""

    id: str
    name: str
    key_hash: str
    created_at: int
    last_used_at: int | None = None
    revoked_at: int | None = None


@dataclass(frozen=True, slots=True)
class AppSyncRecord:
    """The last attempt to sync the app at ``url``: by the server (a PUT to the app, for a
    URL given with ``-u`` or added through the API) or by the app (``POST /fn/register``).

    ``added_at`` is when the URL was added through the API (None otherwise): such a URL is
    synced again on every poll, as a ``-u`` URL is. ``app_name`` is the app that last
    registered from the URL, once one has.
    """

    url: str
    attempted_at: int
    ok: bool
    error: str | None = None
    app_name: str | None = None
    added_at: int | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The queue as a metrics scrape sees it, counted over every node sharing the store."""

    due_jobs: int  # due now and not held by a live lease (waiting for a worker)
    oldest_due_at: int | None  # when the longest-waiting of them fell due
    # Parked on a flow-control key: refused a concurrency slot or a throttle turn, waiting
    # for the key to free (``flow/waiters.py``).
    waiting_jobs: int
    pauses: dict[PauseKind, int]  # pauses stored, by kind (every kind present, 0 if none)


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a listing returns; every field set narrows it (an empty tuple: any)."""

    statuses: tuple[RunStatus, ...] = ()
    # Running runs that hold only a sleep (or a wait); with ``statuses``, either matches.
    holds: tuple[RunHold, ...] = ()
    function_slugs: tuple[str, ...] = ()
    app_name: str | None = None
    created_from: int | None = None  # inclusive
    created_until: int | None = None  # exclusive, so that adjacent windows never overlap
    event_id: str | None = None  # the triggering event's internal id
    event_name: str | None = None  # the triggering event's name


@dataclass(frozen=True, slots=True)
class RunCounts:
    """Runs of one function created in one bucket of time, by their status now."""

    start: int  # the bucket's first millisecond; it lasts the window's ``bucket_ms``
    counts: dict[RunStatus, int]  # only the statuses seen


@dataclass(frozen=True, slots=True)
class RunWindow:
    """One function's runs created in ``[start, end)``, in buckets of ``bucket_ms``."""

    start: int
    end: int
    bucket_ms: int
    buckets: tuple[RunCounts, ...]  # every bucket, oldest first, empty ones included
    ended: int  # how many of them ended (Completed or Failed): the durations' population
    sampled: int  # how many of those the percentiles read (the newest, up to a bound)
    p50_ms: int | None  # run duration (created to ended), None when none ended
    p95_ms: int | None


@dataclass(frozen=True, slots=True)
class FunctionStats:
    """One function's recent runs, as its dashboard page charts them."""

    last_hour: RunWindow  # by minute
    last_day: RunWindow  # by hour


@dataclass(frozen=True, slots=True)
class OpenWork:
    """What an unfinished run holds at ``now``: the kinds of its queued or leased jobs and
    of its pauses. A listing reads it for a page of runs at once to tell a sleeping or waiting
    run from a running one without reading each run's history."""

    jobs: frozenset[JobKind] = frozenset()
    pauses: frozenset[PauseKind] = frozenset()
    in_flight: bool = False  # one of its jobs is leased now (a call to the app under way)
