"""The engine: one object that owns the registry, scheduler, executor and queue worker."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from typing import Any

from ... import protocol
from ...errors import ApiError
from ...protocol import GeneratorOp, Opcode, dumps
from .. import faults
from ..live import LiveFeed
from ..metrics import Metrics
from ..store.base import Store
from ..store.records import (
    AppRecord,
    CancellationRecord,
    Checkpoint,
    CheckpointOutcome,
    EndpointOutcome,
    EndpointRecord,
    EndpointStart,
    EventRecord,
    FunctionRecord,
    HistoryEntry,
    HistoryKind,
    Ingest,
    JobKind,
    NewJob,
    RunState,
    RunStatus,
    Settled,
    Transition,
)
from . import dispatch, endpoints, lifecycle, pauses
from .checkpoint import defers_to_save, steps_to_save
from .cron import next_cron_ms
from .driver import Driver
from .executor import MAX_STEP_OUTPUT, Executor, now_ms
from .invocation import Invocation, held_reason, plan_invocation
from .outbound import OutboundClient
from .registry import Registry, spec_from_record
from .rerun import plan_rerun, seed_steps
from .scheduler import Scheduler
from .worker import Worker

log = logging.getLogger("stepwise.engine")

# History retention deletes at most this many runs (and as many events) per transaction,
PURGE_BATCH = 500
# and rests this long between two transactions.
PURGE_PAUSE_S = 0.05


class Engine:
    def __init__(
        self,
        store: Store,
        *,
        signing_key: str | None,
        server_kind: str,
        retry_interval_s: float | None,
        concurrency: int,
        call_timeout_s: float,
        outbound: OutboundClient | None = None,
        lease_s: float = 15.0,
        registry_poll_s: float = 0.5,
        retention_ms: int | None = None,
        retention_sweep_s: float = 60.0,
        accept_unsigned_stream_bodies: bool = False,
    ) -> None:
        self.store = store
        self.registry = Registry()
        self._registry_version: int | None = None
        self._registry_changed = asyncio.Event()
        self._registry_lock = asyncio.Lock()
        self._registry_poll_s = registry_poll_s
        self._registry_watch: asyncio.Task[None] | None = None
        self._retention_ms = retention_ms
        self._retention_sweep_s = retention_sweep_s
        self._retention: asyncio.Task[None] | None = None
        self.scheduler = Scheduler(self.registry)
        self.metrics = Metrics()
        self.live = LiveFeed()
        self.driver = Driver(
            signing_key=signing_key,
            server_kind=server_kind,
            timeout_s=call_timeout_s,
            max_connections=concurrency,
            outbound=outbound,
            metrics=self.metrics,
            accept_unsigned_stream_bodies=accept_unsigned_stream_bodies,
        )
        self.executor = Executor(
            registry=self.registry,
            scheduler=self.scheduler,
            driver=self.driver,
            retry_interval_s=retry_interval_s,
            store=store,
        )
        # Short leases, renewed while a call is in flight: a slow step keeps its job, and the
        # jobs of a node that died are due again within ``lease_s``.
        self.worker = Worker(
            store,
            self.executor.execute,
            concurrency=concurrency,
            lease_ms=int(lease_s * 1000),
            on_committed=self._committed,
            give_up=self.executor.fail_after_faults,
        )

    async def start(self) -> None:
        await self.store.open()
        if self.store.exclusive:
            # This process owns the database alone: every lease is a stopped process's.
            recovered = await self.store.recover_leases(now_ms())
            if recovered:
                log.info("recovered %d jobs that were in flight when the server stopped", recovered)
        await self.reload_registry()
        self.store.on_change(self._changed_elsewhere)
        self.worker.start()
        self._registry_watch = asyncio.create_task(
            self._watch_registry(), name="stepwise-registry-watch"
        )
        if self._retention_ms:
            self._retention = asyncio.create_task(
                self._sweep_history(self._retention_ms), name="stepwise-retention"
            )

    async def stop(self) -> None:
        for background in (self._registry_watch, self._retention):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        await self.worker.stop()
        await self.driver.close()
        await self.store.close()

    async def reload_registry(self) -> None:
        """Load the function set from the store, and remember which version it was."""
        # One reload at a time: the registry watch's reload, overtaken by a sync's, would
        # otherwise put back the function set it read before that sync committed.
        async with self._registry_lock:
            # The version first: a sync landing in between only makes the next poll reload.
            self._registry_version = await self.store.registry_version()
            self.registry.replace_all(await self.store.list_functions())
        self.live.publish("apps")

    def _changed_elsewhere(self, topic: str) -> None:
        """Another node committed news: new work wakes the worker, a sync the registry watch."""
        if topic == "registry":
            self._registry_changed.set()
            self.live.publish("apps")
        else:
            self.worker.notify()
            # Work another node committed: its runs moved, and it may have stored events.
            self.live.publish("runs")
            self.live.publish("events")

    async def _watch_registry(self) -> None:
        """Pick up apps synced through another node sharing the database."""
        while True:
            # A notification from the syncing node comes at once; the poll covers a lost one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._registry_changed.wait(), self._registry_poll_s)
            self._registry_changed.clear()
            try:
                if await self.store.registry_version() != self._registry_version:
                    await self.reload_registry()
                    log.info("function registry reloaded: %d functions", len(self.registry.all()))
                    self.worker.notify()
            except Exception:
                log.exception("reloading the function registry failed")

    async def purge_history(self, retention_ms: int) -> int:
        """Delete what finished more than ``retention_ms`` ago, batch by batch; how much."""
        total = 0
        while True:
            deleted = await self.store.purge_finished(now_ms() - retention_ms, PURGE_BATCH)
            total += deleted
            if deleted < PURGE_BATCH:
                return total
            # Small transactions with pauses between them: the writer serves runs meanwhile.
            await asyncio.sleep(PURGE_PAUSE_S)

    async def _sweep_history(self, retention_ms: int) -> None:
        while True:
            try:
                purged = await self.purge_history(retention_ms)
                if purged:
                    log.info("history retention deleted %d finished runs and events", purged)
            except Exception:
                log.exception("history retention failed; trying again at the next sweep")
            await asyncio.sleep(self._retention_sweep_s)

    def _committed(
        self, transition: Transition, state: RunState | None, applied: list[bool]
    ) -> None:
        self.metrics.committed(transition, state, applied)
        self.live.publish("runs")
        if transition.ingest is not None:
            self.live.publish("events")
        if (
            transition.new_jobs
            or transition.ingest
            or transition.retry_at
            or transition.continue_with
            or transition.planned
            or transition.run_changes
        ):
            self.worker.notify()

    async def ingest(self, events: list[EventRecord]) -> list[str]:
        """Store events and start the runs they trigger, durably, in one commit."""
        batch = self.scheduler.plan(events, now_ms())
        created = await self.store.ingest(batch)
        self.live.publish("events")
        if created:
            self.live.publish("runs")
        # Even an event that starts no run may have queued match jobs for waiting runs.
        self.worker.notify()
        return created

    async def sync_app(
        self,
        *,
        name: str,
        url: str,
        sdk: str,
        framework: str,
        functions: list[dict[str, Any]],
        checksum_source: bytes,
    ) -> tuple[AppRecord, bool]:
        now = now_ms()
        app = AppRecord(
            id=str(uuid.uuid4()),
            name=name,
            url=url,
            sdk=sdk,
            framework=framework,
            checksum=hashlib.sha256(checksum_source).hexdigest(),
            created_at=now,
            updated_at=now,
        )
        records = []
        crons: list[tuple[str, int, str]] = []
        for config in functions:
            runtime_url = config["steps"]["step"]["runtime"]["url"]
            record = FunctionRecord(
                id=str(uuid.uuid4()),
                app_id=app.id,
                slug=config["id"],
                name=config.get("name") or config["id"],
                config=config,
                url=runtime_url,
                created_at=now,
            )
            records.append(record)
            for trigger in spec_from_record(record).cron_triggers:
                crons.append((record.slug, next_cron_ms(trigger.cron, now), trigger.cron))
        stored, modified = await self.store.sync_app(app, records, crons)
        await self.reload_registry()
        self.worker.notify()
        return stored, modified

    async def cancel_run(self, run_id: str) -> RunStatus | None:
        """Cancel a run if it is active; its status afterwards (None if there is no such run)."""
        states = await self.store.load_run_states([run_id])
        state = states.get(run_id)
        if state is None:
            return None
        if not state.run.status.terminal:
            change = lifecycle.cancel_change(
                state, self.scheduler, now_ms(), "cancelled through the API"
            )
            applied = await self.store.apply_changes([change])
            self.metrics.changes_applied([change], applied)
            self.live.publish("runs")
            self.worker.notify()
        run = await self.store.get_run(run_id)
        return run.status if run is not None else None

    async def rerun(self, run_id: str, *, from_step: str | None = None) -> str | None:
        """Start a new run that reruns ``run_id`` (from ``from_step`` if given); the new
        run's id, None if there is no such run. Raises ``RerunRefused``."""
        original = await self.store.load_run_state(run_id)
        if original is None:
            return None
        now = now_ms()
        seed: tuple[Settled, ...] = ()
        if from_step is not None:
            seed = seed_steps(original, await self.store.run_history(run_id), from_step, now)
        new_run = plan_rerun(self.registry, original, now, seed=seed)
        # The run, its first job and its seeded steps commit together, as any run's start.
        created = await self.store.ingest(Ingest(runs=[new_run]))
        faults.hit("rerun.created")
        if not created:  # only a key seen before is refused, and this one is new
            raise RuntimeError(f"the store did not create rerun {new_run.id}")
        self.worker.notify()
        return new_run.id

    async def invoke(self, slug: str, data: dict[str, Any]) -> Invocation | None:
        """Start a run of function ``slug`` with ``data`` (None if no such function)."""
        spec = self.registry.get(slug)
        if spec is None:
            return None
        batch = plan_invocation(spec, data, now_ms())
        created = await self.store.ingest(batch)
        if created:
            self.worker.notify()
        return Invocation(
            event_id=batch.events[0].internal_id,
            run_id=created[0] if created else None,
            held=held_reason(batch, created),
        )

    async def checkpoint(
        self,
        run_id: str,
        ops: list[GeneratorOp],
        *,
        queue_item: str | None,
        generation: int | None,
        body_bytes: int,
        function_id: str | None = None,
    ) -> CheckpointOutcome:
        """Save the steps an SDK ran inside an open call (raises ``CheckpointRejected``).

        ``function_id`` is the function's internal id as the SDK echoes it: it only labels
        the steps counted in the metrics (an unknown one counts nothing)."""
        now = now_ms()
        settled = steps_to_save(ops, now, body_bytes)
        saved = await self.store.checkpoint(
            Checkpoint(
                run_id=run_id,
                settled=settled,
                started=HistoryEntry(HistoryKind.RUN_STARTED, now),
                fence=dispatch.fence_of(queue_item, generation),
                defers=defers_to_save(ops, now),
            )
        )
        if saved is CheckpointOutcome.SAVED:
            faults.hit("checkpoint.saved")
            spec = self.registry.by_id(function_id) if function_id else None
            if spec is not None:
                self.metrics.steps_saved(spec.slug, settled)
        return saved

    # ---- durable endpoints ----------------------------------------------------------
    async def start_endpoint(
        self,
        *,
        run_id: str,
        event: dict[str, Any],
        ops: list[GeneratorOp],
        retries: int,
        request_version: int,
        body_bytes: int,
        sdk: str = "",
    ) -> tuple[EndpointOutcome, EndpointRecord | None, EndpointStart]:
        """Create a durable endpoint's run with its first checkpoint (raises ``ApiError``
        for what cannot be stored); the outcome, the endpoint stored, and what was planned."""
        _check_outputs(ops, body_bytes)
        owners = await self.executor.signal_owners(ops, run_id)
        start = endpoints.plan_start(
            self.executor,
            run_id=run_id,
            event=event,
            ops=ops,
            retries=retries,
            request_version=request_version,
            now=now_ms(),
            body_bytes=body_bytes,
            signal_owners=owners,
            sdk=sdk,
        )
        faults.hit("endpoint.start")
        outcome, endpoint = await self.store.start_endpoint_run(start)
        if outcome is EndpointOutcome.CREATED:
            faults.hit("endpoint.started")
            known = self.registry.get(start.function.slug)
            if known is None or known.record.config != start.function.config:
                await self.reload_registry()
            self.metrics.runs_started.labels(start.function.slug).inc()
            state = endpoints.running_state(start.run, start.event, request_version)
            self._committed(start.first, state, [])
            self.live.publish("events")
        return outcome, endpoint, start

    async def endpoint_steps(
        self, run_id: str, ops: list[GeneratorOp], body_bytes: int
    ) -> CheckpointOutcome:
        """Apply a durable endpoint's later checkpoint (raises ``ApiError``)."""
        _check_outputs(ops, body_bytes)
        state = await self.store.load_run_state(run_id)
        if state is None:
            return CheckpointOutcome.NO_RUN
        endpoint = await self.store.get_endpoint(run_id)
        if endpoint is None:
            return CheckpointOutcome.NOT_ENDPOINT
        if state.run.status.terminal:
            return CheckpointOutcome.RUN_ENDED
        spec = endpoints.endpoint_spec(
            endpoint, self.registry.get(state.run.function_slug), state.run
        )
        owners = await self.executor.signal_owners(ops, run_id)
        transition = endpoints.checkpoint_transition(
            self.executor, state, spec, ops, now_ms(), body_bytes, owners
        )
        faults.hit("endpoint.steps")
        saved = await self.store.save_endpoint_steps(transition)
        if saved is CheckpointOutcome.SAVED:
            faults.hit("endpoint.steps.saved")
            self._committed(transition, state, [])
        return saved

    async def send_signal(self, signal: str, data: Any) -> str | None:
        """Resume the run waiting for ``signal``; its run id, or None if nobody waits."""
        for _ in range(3):  # a waiter may be replaced between the read and the write
            pause = await self.store.pause_for_signal(signal)
            if pause is None:
                return None
            change = pauses.resume(
                pause, {"data": {"signal": signal, "data": data}}, now_ms(), timed_out=False
            )
            [applied] = await self.store.apply_changes([change])
            if applied:
                self.worker.notify()
                return pause.run_id
        return None

    async def create_cancellation(
        self,
        *,
        app_id: str,
        function_slug: str,
        started_before: int,
        started_after: int | None,
        expression: str | None,
    ) -> CancellationRecord:
        now = now_ms()
        record = CancellationRecord(
            id=protocol.new_ulid(now),
            app_id=app_id,
            function_slug=function_slug,
            started_before=started_before,
            started_after=started_after,
            expression=expression,
            created_at=now,
        )
        job = NewJob(
            run_id=None,
            kind=JobKind.CANCEL_BULK,
            run_at=now,
            key=f"cancel_bulk:{record.id}",
            payload={"cancellation_id": record.id, "after": ""},
        )
        await self.store.create_cancellation(record, job)
        self.worker.notify()
        return record

    @staticmethod
    def new_event_ids(seed: str | None, count: int) -> list[str]:
        if seed:
            ids = protocol.ids_from_seed(seed, count)
            if ids is not None:
                return ids
        return [protocol.new_ulid() for _ in range(count)]


def _check_outputs(ops: list[GeneratorOp], body_bytes: int) -> None:
    """A handler goes on with a step's result once it is saved: one the server cannot keep
    is refused (the SDK then fails the client's request), not saved as a failed step."""
    if body_bytes <= MAX_STEP_OUTPUT:
        return
    for op in ops:
        if op.op in (Opcode.STEP_RUN, Opcode.STEP) and len(dumps(op.data)) > MAX_STEP_OUTPUT:
            raise ApiError(
                413,
                "step_output_too_large",
                f"the output of step {op.id} is over {MAX_STEP_OUTPUT} bytes",
            )
