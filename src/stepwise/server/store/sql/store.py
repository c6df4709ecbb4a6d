"""The store operations, written once over ``store/sql/`` for every SQL backend.

A backend subclasses ``SqlStore`` and says how to run a function on a connection:
``_write`` inside a transaction it commits (group commit on both backends), ``_read``
on a connection of its readers. It decides nothing: the ``sql/`` functions persist and
lock, and ``server/flow/`` decides.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from ..records import (
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
from . import (
    app_syncs,
    apps,
    cancellations,
    defers,
    endpoints,
    event_fates,
    function_stats,
    housekeeping,
    ingest,
    keys,
    leasing,
    listing,
    pauses,
    reads,
    run_pages,
    stats,
    transitions,
)
from .conn import Conn

T = TypeVar("T")

# What a write tells other nodes about: "jobs" (work may be due sooner than they think),
# "registry" (the set of apps and functions changed).
JOBS = ("jobs",)


class SqlStore(abc.ABC):
    """Every ``Store`` operation as one ``sql/`` function run by the backend."""

    # Row locks a lease takes on the jobs it reads: none where one writer serialises all.
    lease_row_locks = ""

    @abc.abstractmethod
    async def _read(self, fn: Callable[[Any], T]) -> T: ...

    @abc.abstractmethod
    async def _write(self, fn: Callable[[Any], T], *, wake: tuple[str, ...] = ()) -> T:
        """``fn`` in a transaction, once committed; other nodes hear of ``wake``'s topics."""

    def on_change(self, wake: Callable[[str], None]) -> None:  # noqa: B027 - one node: no news
        """Have ``wake(topic)`` called when another node commits news of ``topic``.

        A single-node backend has no other node: nothing is ever called.
        """

    async def recover_leases(self, now: int) -> int:
        """Make every leased job due now. Only for a store that owns its database alone
        (``exclusive``): on a shared one, the leases belong to live nodes."""
        return await self._write(lambda conn: leasing.recover_leases(conn, now), wake=JOBS)

    # ---- apps and functions -------------------------------------------------
    async def sync_app(
        self, app: AppRecord, functions: list[FunctionRecord], cron_jobs: list[tuple[str, int, str]]
    ) -> tuple[AppRecord, bool]:
        def op(conn: Conn) -> tuple[AppRecord, bool]:
            synced = apps.sync_app(conn, app, functions, cron_jobs)
            housekeeping.bump_registry_version(conn)
            return synced

        return await self._write(op, wake=("jobs", "registry"))

    async def list_functions(self) -> list[FunctionRecord]:
        return await self._read(apps.list_functions)

    async def list_apps(self) -> list[AppRecord]:
        return await self._read(apps.list_apps)

    # ---- events and runs ----------------------------------------------------
    async def ingest(self, batch: Ingest) -> list[str]:
        return await self._write(lambda conn: ingest.apply_ingest(conn, batch), wake=JOBS)

    async def get_event(self, internal_id: str) -> EventRecord | None:
        return await self._read(lambda conn: reads.get_event(conn, internal_id))

    async def list_events(
        self,
        *,
        limit: int,
        cursor: tuple[str, int] | None,
        name: str | None,
        received_after: int | None,
        received_before: int | None,
    ) -> list[EventRecord]:
        return await self._read(
            partial(
                reads.list_events,
                limit=limit,
                cursor=cursor,
                name=name,
                received_after=received_after,
                received_before=received_before,
            )
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._read(lambda conn: reads.get_run(conn, run_id))

    async def runs_for_event(self, internal_id: str) -> list[RunRecord]:
        return await self._read(lambda conn: reads.runs_for_event(conn, internal_id))

    async def load_run_state(self, run_id: str) -> RunState | None:
        return await self._read(lambda conn: reads.load_run_state(conn, run_id))

    async def list_steps(self, run_id: str) -> list[tuple[str, Any]]:
        return await self._read(lambda conn: reads.list_steps(conn, run_id))

    async def run_history(self, run_id: str) -> list[HistoryEntry]:
        return await self._read(lambda conn: reads.run_history(conn, run_id))

    async def run_defers(self, run_id: str) -> list[DeferRecord]:
        found = await self._read(lambda conn: defers.load_defers(conn, [run_id]))
        return found[run_id]

    async def add_history(self, run_id: str, entries: list[HistoryEntry]) -> bool:
        return await self._write(lambda conn: transitions.add_history(conn, run_id, entries))

    # ---- queue ----------------------------------------------------------------
    async def lease_due_jobs(self, now: int, limit: int, lease_ms: int) -> list[Job]:
        return await self._write(
            lambda conn: leasing.lease(conn, now, limit, lease_ms, row_locks=self.lease_row_locks)
        )

    async def lease_due_work(
        self, now: int, limit: int, lease_ms: int
    ) -> list[tuple[Job, RunState | None]]:
        def op(conn: Conn) -> list[tuple[Job, RunState | None]]:
            jobs = leasing.lease(conn, now, limit, lease_ms, row_locks=self.lease_row_locks)
            states = reads.load_run_states(conn, [j.run_id for j in jobs if j.run_id])
            return [(job, states.get(job.run_id) if job.run_id else None) for job in jobs]

        return await self._write(op)

    async def next_due_at(self) -> int | None:
        return await self._read(leasing.next_due_at)

    async def commit(self, transition: Transition) -> list[bool]:
        return await self._write(
            lambda conn: transitions.apply_transition(conn, transition), wake=JOBS
        )

    async def checkpoint(self, checkpoint: Checkpoint) -> CheckpointOutcome:
        return await self._write(lambda conn: transitions.save_checkpoint(conn, checkpoint))

    # ---- durable endpoints ----------------------------------------------------------
    async def start_endpoint_run(
        self, start: EndpointStart
    ) -> tuple[EndpointOutcome, EndpointRecord | None]:
        return await self._write(
            lambda conn: endpoints.start_endpoint_run(conn, start), wake=("jobs", "registry")
        )

    async def save_endpoint_steps(self, transition: Transition) -> CheckpointOutcome:
        return await self._write(
            lambda conn: endpoints.save_endpoint_steps(conn, transition), wake=JOBS
        )

    async def get_endpoint(self, run_id: str) -> EndpointRecord | None:
        return await self._read(lambda conn: endpoints.get_endpoint(conn, run_id))

    async def append_stream(
        self, run_id: str, chunks: list[bytes], max_bytes: int
    ) -> StreamOutcome:
        return await self._write(
            lambda conn: endpoints.append_stream(conn, run_id, chunks, max_bytes)
        )

    async def read_stream(self, run_id: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        return await self._read(lambda conn: endpoints.read_stream(conn, run_id, after, limit))

    async def release_after_fault(self, job: Job, run_at: int) -> bool:
        return await self._write(
            lambda conn: leasing.release_after_fault(conn, job.id, job.lease, run_at), wake=JOBS
        )

    async def commit_many(self, transitions: list[Transition]) -> list[BaseException | None]:
        results = await asyncio.gather(
            *(self.commit(t) for t in transitions), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    async def load_run_states(self, run_ids: list[str]) -> dict[str, RunState]:
        return await self._read(lambda conn: reads.load_run_states(conn, run_ids))

    # ---- pauses -------------------------------------------------------------------
    async def find_pauses(
        self, event_name: str, horizon: int, index_value_at: Callable[[str], str | None]
    ) -> list[Pause]:
        return await self._read(
            lambda conn: pauses.find_pauses(conn, event_name, horizon, index_value_at)
        )

    async def get_pause(self, key: str) -> Pause | None:
        return await self._read(lambda conn: pauses.get_pause(conn, key))

    async def pause_for_signal(self, signal: str) -> Pause | None:
        return await self._read(lambda conn: pauses.pause_for_signal(conn, signal))

    async def run_pauses(self, run_id: str) -> list[Pause]:
        return await self._read(lambda conn: pauses.run_pauses(conn, run_id))

    async def apply_changes(self, changes: list[RunChange]) -> list[bool]:
        return await self._write(
            lambda conn: [transitions.apply_run_change(conn, c) for c in changes], wake=JOBS
        )

    async def get_debounce(self, key: str) -> tuple[str, str] | None:
        return await self._read(lambda conn: reads.get_debounce(conn, key))

    async def idempotency_claim(self, function_id: str, key: str) -> str | None:
        return await self._read(lambda conn: event_fates.idempotency_claim(conn, function_id, key))

    async def batch_holding(self, key: str) -> list[str]:
        return await self._read(lambda conn: event_fates.batch_holding(conn, key))

    # ---- bulk cancellations -------------------------------------------------------
    async def create_cancellation(self, record: CancellationRecord, job: NewJob) -> None:
        await self._write(
            lambda conn: cancellations.create_cancellation(conn, record, job), wake=JOBS
        )

    async def list_cancellations(self) -> list[CancellationRecord]:
        return await self._read(cancellations.list_cancellations)

    async def get_cancellation(self, cancellation_id: str) -> CancellationRecord | None:
        return await self._read(lambda conn: cancellations.get_cancellation(conn, cancellation_id))

    async def delete_cancellation(self, cancellation_id: str) -> bool:
        return await self._write(
            lambda conn: cancellations.delete_cancellation(conn, cancellation_id)
        )

    async def active_runs(
        self,
        function_slug: str,
        *,
        after_run_id: str,
        created_before: int,
        created_after: int | None,
        limit: int,
    ) -> list[RunState]:
        return await self._read(
            partial(
                reads.active_runs,
                function_slug=function_slug,
                after_run_id=after_run_id,
                created_before=created_before,
                created_after=created_after,
                limit=limit,
            )
        )

    # ---- test and benchmark helpers ------------------------------------------
    async def count_jobs(self) -> int:
        return await self._read(reads.count_jobs)

    # ---- many nodes ---------------------------------------------------------------
    async def renew_leases(self, leases: list[tuple[int, str]], until: int) -> set[int]:
        if not leases:
            return set()
        return await self._write(lambda conn: housekeeping.renew_leases(conn, leases, until))

    async def registry_version(self) -> int:
        return await self._read(housekeeping.registry_version)

    async def purge_finished(self, before: int, limit: int) -> int:
        return await self._write(lambda conn: housekeeping.purge_finished(conn, before, limit))

    # ---- API keys -------------------------------------------------------------------
    async def create_api_key(self, key: ApiKeyRecord) -> None:
        await self._write(lambda conn: keys.create_api_key(conn, key))

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return await self._read(keys.list_api_keys)

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        return await self._read(lambda conn: keys.find_api_key(conn, key_hash))

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        return await self._write(lambda conn: keys.revoke_api_key(conn, key_id, now))

    async def touch_api_key(self, key_id: str, now: int) -> None:
        await self._write(lambda conn: keys.touch_api_key(conn, key_id, now))

    # ---- app syncs ------------------------------------------------------------------
    async def record_app_sync(self, sync: AppSyncRecord) -> None:
        await self._write(lambda conn: app_syncs.record_app_sync(conn, sync))

    async def list_app_syncs(self) -> list[AppSyncRecord]:
        return await self._read(app_syncs.list_app_syncs)

    # ---- metrics ------------------------------------------------------------------
    async def queue_stats(self, now: int) -> QueueStats:
        return await self._read(lambda conn: stats.queue_stats(conn, now))

    # ---- run listing ----------------------------------------------------------------
    async def list_runs(
        self, where: RunFilter, *, limit: int, after: tuple[int, str] | None
    ) -> list[RunRecord]:
        return await self._read(partial(listing.list_runs, where=where, limit=limit, after=after))

    # ---- function metrics -------------------------------------------------------------
    async def function_stats(self, slug: str, now: int) -> FunctionStats:
        return await self._read(partial(function_stats.function_stats, slug=slug, now=now))

    # ---- a page of runs ---------------------------------------------------------------
    async def open_work(self, run_ids: Sequence[str], now: int) -> dict[str, OpenWork]:
        return await self._read(lambda conn: run_pages.open_work(conn, run_ids, now))

    async def events_by_id(self, internal_ids: Sequence[str]) -> dict[str, EventRecord]:
        return await self._read(lambda conn: run_pages.events_by_id(conn, internal_ids))
