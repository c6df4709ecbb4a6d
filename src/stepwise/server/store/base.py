"""The storage boundary: domain operations, not SQL. Every backend implements ``Store``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .records import (
    ApiKeyRecord,
    AppRecord,
    AppSyncRecord,
    CancellationRecord,
    Checkpoint,
    CheckpointOutcome,
    DeferRecord,
    EndpointOutcome,
    EndpointRecord,
    EndpointStart,
    EventRecord,
    FunctionRecord,
    FunctionStats,
    HistoryEntry,
    Ingest,
    Job,
    NewJob,
    OpenWork,
    Pause,
    QueueStats,
    RunChange,
    RunFilter,
    RunRecord,
    RunState,
    StreamOutcome,
    Transition,
)


class Store(Protocol):
    async def open(self) -> None:
        """Create or migrate the schema and start background writers."""

    async def close(self) -> None: ...

    async def recover_leases(self, now: int) -> int:
        """Make every leased job due now (used at start by a single-node backend)."""

    # ---- apps and functions -------------------------------------------------
    async def sync_app(
        self, app: AppRecord, functions: list[FunctionRecord], cron_jobs: list[tuple[str, int, str]]
    ) -> tuple[AppRecord, bool]:
        """Upsert an app and replace its function set; return (stored app, modified).

        ``cron_jobs`` is the full set of (function slug, first run_at, cron expression)
        the app needs; cron jobs of this app's functions, old or new, not in it are removed.
        """

    async def list_functions(self) -> list[FunctionRecord]: ...

    async def list_apps(self) -> list[AppRecord]: ...

    # ---- events and runs ----------------------------------------------------
    async def ingest(self, batch: Ingest) -> list[str]:
        """Store events and create runs (skipping seen idempotency keys); return run ids created.

        An event whose internal id is already stored is kept as its next copy, and the
        runs and pause matches planned for it are dropped: the first copy had them.
        """

    async def get_event(self, internal_id: str) -> EventRecord | None:
        """The first copy of the event with this internal id."""

    async def list_events(
        self,
        *,
        limit: int,
        cursor: tuple[str, int] | None,
        name: str | None,
        received_after: int | None,
        received_before: int | None,
    ) -> list[EventRecord]:
        """Every stored copy, newest first by (internal id, copy); after ``cursor`` if given."""

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def runs_for_event(self, internal_id: str) -> list[RunRecord]: ...

    async def load_run_state(self, run_id: str) -> RunState | None: ...

    async def list_steps(self, run_id: str) -> list[tuple[str, Any]]: ...

    async def run_history(self, run_id: str) -> list[HistoryEntry]:
        """What happened in a run, oldest first."""

    async def run_defers(self, run_id: str) -> list[DeferRecord]:
        """A run's defers, in the order they were added."""

    async def add_history(self, run_id: str, entries: list[HistoryEntry]) -> bool:
        """Add entries to a run's history, whether it ended or not; False if no such run."""

    # ---- queue ----------------------------------------------------------------
    async def lease_due_jobs(self, now: int, limit: int, lease_ms: int) -> list[Job]:
        """Lease up to ``limit`` jobs due at ``now``; a lease expires after ``lease_ms``."""

    async def lease_due_work(
        self, now: int, limit: int, lease_ms: int
    ) -> list[tuple[Job, RunState | None]]:
        """``lease_due_jobs`` plus each job's run state, read in the same transaction."""

    async def next_due_at(self) -> int | None:
        """When the earliest job falls due (leased jobs count at their lease expiry)."""

    async def commit(self, transition: Transition) -> list[bool]:
        """Apply one job's outcome atomically; raise ``LeaseLost`` if the lease is gone,
        ``SignalTaken`` if a new signal wait finds its signal taken (nothing is written).
        Returns which of its guarded ``run_changes`` applied, in order."""

    async def checkpoint(self, checkpoint: Checkpoint) -> CheckpointOutcome:
        """Save steps an SDK ran inside a call that is still open, atomically and in order.

        Nothing is written if the run is unknown or ended, or if ``checkpoint.fence`` names
        a dispatch that is stale (``engine/dispatch.py``); otherwise the fenced job's
        attempt count restarts at 0. No job is added: the SDK goes on in the open call.
        """

    # ---- durable endpoints ----------------------------------------------------------
    async def start_endpoint_run(
        self, start: EndpointStart
    ) -> tuple[EndpointOutcome, EndpointRecord | None]:
        """Create a durable endpoint's run with its first checkpoint, atomically: the app and
        function as needed, the event, the run (Running, no job), its endpoint row, and
        ``start.first`` applied. A run id already stored writes nothing: REPEATED (with the
        stored endpoint) when it was this same start (same event data), else RUN_EXISTS;
        FUNCTION_TAKEN if the function's slug belongs to another app."""

    async def save_endpoint_steps(self, transition: Transition) -> CheckpointOutcome:
        """Apply a durable endpoint's later checkpoint (a transition of ``NO_JOB``)
        atomically, only while its run is active; nothing is written otherwise (NO_RUN,
        NOT_ENDPOINT, RUN_ENDED)."""

    async def get_endpoint(self, run_id: str) -> EndpointRecord | None:
        """The endpoint row of a durable endpoint's run; None for any other run."""

    async def append_stream(
        self, run_id: str, chunks: list[bytes], max_bytes: int
    ) -> StreamOutcome:
        """Add chunks, in order, to the end of a durable endpoint's stream; nothing if the
        stream would then hold more than ``max_bytes`` (FULL) or the run is not one."""

    async def read_stream(self, run_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` (seq, chunk) of a run's stream numbered above ``after``, in order."""

    async def release_after_fault(self, job: Job, run_at: int) -> bool:
        """The server failed handling ``job``: unlease it, due at ``run_at``, one more fault
        counted and its concurrency slots freed; False if the lease was no longer ours."""

    async def load_run_states(self, run_ids: list[str]) -> dict[str, RunState]: ...

    # ---- pauses -------------------------------------------------------------------
    async def find_pauses(
        self, event_name: str, horizon: int, index_value_at: Callable[[str], str | None]
    ) -> list[Pause]:
        """Pauses on ``event_name`` written up to ``horizon`` that the event may match."""

    async def get_pause(self, key: str) -> Pause | None: ...

    async def pause_for_signal(self, signal: str) -> Pause | None: ...

    async def run_pauses(self, run_id: str) -> list[Pause]: ...

    async def get_debounce(self, key: str) -> tuple[str, str] | None:
        """The (function id, event id) a debounce holds for ``key``."""

    async def idempotency_claim(self, function_id: str, key: str) -> str | None:
        """The run whose start claimed the function's idempotency ``key``, while stored."""

    async def batch_holding(self, key: str) -> list[str]:
        """The internal ids of the events the open batch of ``key`` holds, oldest first."""

    async def apply_changes(self, changes: list[RunChange]) -> list[bool]:
        """Apply guarded run changes outside any job, in one transaction; which applied."""

    # ---- bulk cancellations -------------------------------------------------------
    async def create_cancellation(self, record: CancellationRecord, job: NewJob) -> None: ...

    async def list_cancellations(self) -> list[CancellationRecord]: ...

    async def get_cancellation(self, cancellation_id: str) -> CancellationRecord | None: ...

    async def delete_cancellation(self, cancellation_id: str) -> bool: ...

    async def active_runs(
        self,
        function_slug: str,
        *,
        after_run_id: str,
        created_before: int,
        created_after: int | None,
        limit: int,
    ) -> list[RunState]:
        """Active runs of a function created inside a window, ordered by id, after a cursor."""

    async def commit_many(self, transitions: list[Transition]) -> list[BaseException | None]:
        """Apply several independent transitions; each succeeds or fails on its own."""

    # ---- many nodes ---------------------------------------------------------------
    @property
    def exclusive(self) -> bool:
        """Whether this store owns its database alone (one node), so that at start every
        lease still held can only be left over from a stopped process (``recover_leases``).
        A backend shared by many nodes says False: there, leases simply expire."""

    async def renew_leases(self, leases: list[tuple[int, str]], until: int) -> set[int]:
        """Extend the leases (job id, lease token) still held to ``until``, with the
        concurrency slots of their jobs; return the job ids whose lease is no longer ours
        (taken over after it ran out, or the job is gone). A lease that ran out and was not
        taken over is still ours and is extended."""

    async def registry_version(self) -> int:
        """A number that changes whenever ``sync_app`` changes the function set on any node
        sharing this database; cheap enough to poll twice a second."""

    async def purge_finished(self, before: int, limit: int) -> int:
        """History retention: delete at most ``limit`` runs that finished before ``before``
        with their history, steps, pauses and leftover jobs, then at most ``limit`` events
        received before ``before`` that no stored run, open batch or debounce still needs,
        and idempotency keys that expired before ``before``. Active runs are never touched.
        Returns how many runs and events were deleted (less than ``limit`` each: caught up)."""

    def on_change(self, wake: Callable[[str], None]) -> None:
        """Have ``wake(topic)`` called when another node sharing the database commits news:
        ``"jobs"`` (work may be due sooner than this node thinks) or ``"registry"`` (the
        function set changed). After a lost connection to the database both are called, as
        news may have been missed. A single-node backend never calls it."""

    # ---- API keys -------------------------------------------------------------------
    async def create_api_key(self, key: ApiKeyRecord) -> None:
        """Store a new API key (its hash, never the key). Its id and hash are unique."""

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, revoked ones included, oldest first."""

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        """The unrevoked API key with this hash, if any."""

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        """Revoke a key at ``now``; False if no such key, or it was already revoked."""

    async def touch_api_key(self, key_id: str, now: int) -> None:
        """Record that a key was used at ``now`` (never moves ``last_used_at`` back)."""

    # ---- app syncs ------------------------------------------------------------------
    async def record_app_sync(self, sync: AppSyncRecord) -> None:
        """Keep ``sync`` as its URL's last attempt, unless a later one is already kept.

        A None ``app_name`` keeps the name known before; ``added_at`` marks the URL added
        (a URL stays added once it is).
        """

    async def list_app_syncs(self) -> list[AppSyncRecord]:
        """Every URL's last sync attempt, by URL."""

    # ---- metrics ------------------------------------------------------------------
    async def queue_stats(self, now: int) -> QueueStats:
        """Jobs due at ``now`` and not leased, when the oldest of them fell due, and the
        pauses stored by kind: over the whole database, every node's work included."""

    # ---- run listing ----------------------------------------------------------------
    async def list_runs(
        self, where: RunFilter, *, limit: int, after: tuple[int, str] | None
    ) -> list[RunRecord]:
        """At most ``limit`` runs matching ``where``, newest first by (created_at, id);
        only those strictly before ``after`` (the last run of the previous page) if given."""

    # ---- function metrics -------------------------------------------------------------
    async def function_stats(self, slug: str, now: int) -> FunctionStats:
        """The runs of function ``slug`` created in the hour (by minute) and the day (by
        hour) up to ``now``, by status, with the p50 and p95 durations of those that ended.

        Buckets are aligned to whole minutes and hours (the newest one holds ``now``).
        Durations are read for the newest ``DURATION_SAMPLE`` ended runs of the day at most:
        a busy function's percentiles are then those of its newest runs."""

    # ---- a page of runs ---------------------------------------------------------------
    async def open_work(self, run_ids: Sequence[str], now: int) -> dict[str, OpenWork]:
        """The kinds of jobs and pauses each of these runs holds, and whether one of its jobs
        is leased at ``now`` (one query for all of them); a run holding neither is left out."""

    async def events_by_id(self, internal_ids: Sequence[str]) -> dict[str, EventRecord]:
        """The first copy of each of these events (one query); unknown ids are left out."""
