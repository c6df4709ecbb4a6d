"""The engine: one object that owns the registry, scheduler, executor and queue worker."""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from ... import protocol
from ..store.base import Store
from ..store.records import AppRecord, EventRecord, FunctionRecord, Transition
from .driver import Driver
from .executor import Executor, next_cron_ms, now_ms
from .registry import Registry, spec_from_record
from .scheduler import Scheduler
from .worker import Worker

log = logging.getLogger("stepwise.engine")


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
    ) -> None:
        self.store = store
        self.registry = Registry()
        self.scheduler = Scheduler(self.registry)
        self.driver = Driver(
            signing_key=signing_key,
            server_kind=server_kind,
            timeout_s=call_timeout_s,
            max_connections=concurrency,
        )
        self.executor = Executor(
            registry=self.registry,
            scheduler=self.scheduler,
            driver=self.driver,
            retry_interval_s=retry_interval_s,
        )
        # A job's lease outlives the longest SDK call, so a slow step is never run twice.
        self.worker = Worker(
            store,
            self.executor.execute,
            concurrency=concurrency,
            lease_ms=int((call_timeout_s + 60) * 1000),
            on_committed=self._committed,
        )

    async def start(self) -> None:
        await self.store.open()
        recovered = await self.store.recover_leases(now_ms())
        if recovered:
            log.info("recovered %d jobs that were in flight when the server stopped", recovered)
        self.registry.replace_all(await self.store.list_functions())
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
        await self.driver.close()
        await self.store.close()

    def _committed(self, transition: Transition) -> None:
        if (
            transition.new_jobs
            or transition.ingest
            or transition.retry_at
            or transition.become_call_at
        ):
            self.worker.notify()

    async def ingest(self, events: list[EventRecord]) -> list[str]:
        """Store events and start the runs they trigger, durably, in one commit."""
        batch = self.scheduler.plan(events, now_ms())
        created = await self.store.ingest(batch)
        if created:
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
        self.registry.replace_all(await self.store.list_functions())
        self.worker.notify()
        return stored, modified

    @staticmethod
    def new_event_ids(seed: str | None, count: int) -> list[str]:
        if seed:
            ids = protocol.ids_from_seed(seed, count)
            if ids is not None:
                return ids
        return [protocol.new_ulid() for _ in range(count)]
