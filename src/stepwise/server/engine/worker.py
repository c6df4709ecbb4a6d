"""The queue worker: leases due jobs, runs them concurrently, commits their transitions.

It never polls on a tick. It sleeps until the earliest due job, and is woken early by
``notify`` whenever something commits a job that is due sooner (an event ingested, a
step finished, a retry scheduled).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from ..store.base import Store
from ..store.records import Job, LeaseLost, RunState, Transition

log = logging.getLogger("stepwise.worker")

# Longest the worker sleeps without a notification (a guard against a missed wake-up,
# e.g. a job written by another process sharing the database).
MAX_IDLE_S = 1.0


class Worker:
    def __init__(
        self,
        store: Store,
        execute: Callable[[Job, RunState | None], Awaitable[Transition]],
        *,
        concurrency: int,
        lease_ms: int,
        on_committed: Callable[[Transition], None] | None = None,
    ) -> None:
        self.store = store
        self.execute = execute
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        self.on_committed = on_committed
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="stepwise-worker")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _loop(self) -> None:
        while not self._stopping:
            free = self.concurrency - len(self._inflight)
            self._wake.clear()
            if free <= 0:
                # Every slot is busy; a finishing job sets the wake event. Nothing can finish
                # between the check and the clear above: no await separates them.
                await self._wake.wait()
                continue
            now = int(time.time() * 1000)
            try:
                work = await self.store.lease_due_work(now, free, self.lease_ms)
            except Exception:
                log.exception("leasing jobs failed")
                await asyncio.sleep(0.5)
                continue
            for job, state in work:
                self._spawn(job, state)
            if len(work) == free:
                continue  # there may be more due right now
            try:
                next_due = await self.store.next_due_at()
            except Exception:
                log.exception("reading the next due time failed")
                next_due = None
            delay = MAX_IDLE_S
            if next_due is not None:
                delay = min(MAX_IDLE_S, max(0.0, (next_due - int(time.time() * 1000)) / 1000))
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                except TimeoutError:
                    pass

    def _spawn(self, job: Job, state: RunState | None) -> None:
        task = asyncio.create_task(self._run(job, state))
        self._inflight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _run(self, job: Job, state: RunState | None) -> None:
        try:
            transition = await self.execute(job, state)
            await self.store.commit(transition)
        except LeaseLost:
            log.warning("job %s lost its lease; its outcome was dropped", job.id)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            # The job stays leased and falls due again when the lease expires.
            log.exception("job %s (%s) failed inside the server", job.id, job.kind)
            return
        if self.on_committed is not None:
            self.on_committed(transition)
