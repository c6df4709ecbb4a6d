"""The queue worker: leases due jobs, runs them concurrently, commits their transitions.

It never polls on a tick. It sleeps until the earliest due job (with none due, until
notified), and is woken early by ``notify`` whenever this process commits a job that is
due sooner (an event ingested, a step finished, a retry scheduled). This process is the
only writer of its database, so no job can appear without a notification.

When the server itself fails on a job (a bug, a full disk), the job is handed back at
once with a short backoff and its concurrency slots freed; after ``MAX_FAULTS`` faults
in a row a run's job fails the run with the error, so nothing waits out a lease.

Leases are short (``lease_ms``, 15 s by default) so that the work of a node that died is
due again within seconds; a heartbeat renews the leases of every job in flight three
times per lease, in one store call. A job whose lease was taken over meanwhile (this
process stalled past its lease) cannot commit: the store fences each commit on the lease
token and raises ``LeaseLost``, and the outcome is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .. import faults
from ..store.base import Store
from ..store.errors import DatabaseUnavailable
from ..store.records import Job, LeaseLost, RunState, SignalTaken, Transition

log = logging.getLogger("stepwise.worker")

# Faults in a row after which a run's job fails its run (system jobs keep retrying).
MAX_FAULTS = 5
# Backoff after a fault: 0.5 s doubling, at most this long.
MAX_FAULT_DELAY_S = 300.0


def fault_delay_ms(faults: int) -> int:
    """How long a job rests after its ``faults``-th fault (1-based)."""
    return int(min(0.5 * 2 ** (faults - 1), MAX_FAULT_DELAY_S) * 1000)


class Worker:
    def __init__(
        self,
        store: Store,
        execute: Callable[[Job, RunState | None], Awaitable[Transition]],
        *,
        concurrency: int,
        lease_ms: int,
        on_committed: Callable[[Transition, RunState | None, list[bool]], None] | None = None,
        give_up: Callable[[Job, RunState, str], Transition] | None = None,
    ) -> None:
        self.store = store
        self.execute = execute
        self.give_up = give_up
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        self.on_committed = on_committed
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._leases: dict[asyncio.Task[None], Job] = {}
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="stepwise-worker")
        self._heartbeat = asyncio.create_task(self._renew_loop(), name="stepwise-heartbeat")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for background in (self._task, self._heartbeat):
            if background is not None:
                background.cancel()
                try:
                    await background
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
            except DatabaseUnavailable as exc:
                # The store reconnects by itself; no traceback twice a second meanwhile.
                log.warning("leasing jobs: %s; trying again", exc)
                await asyncio.sleep(0.5)
                continue
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
            except DatabaseUnavailable as exc:
                log.warning("reading the next due time: %s; trying again", exc)
                await asyncio.sleep(0.5)
                continue
            except Exception:
                log.exception("reading the next due time failed")
                await asyncio.sleep(0.5)
                continue
            if next_due is None:
                log.debug("worker idle: no job is due, waiting for a notification")
                await self._wake.wait()
                continue
            delay = (next_due - int(time.time() * 1000)) / 1000
            log.debug("worker idle: the next job is due in %.3f s", max(delay, 0.0))
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                except TimeoutError:
                    pass

    def _spawn(self, job: Job, state: RunState | None) -> None:
        task = asyncio.create_task(self._run(job, state))
        self._inflight.add(task)
        self._leases[task] = job
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._leases.pop(task, None)
        self._wake.set()

    async def _renew_loop(self) -> None:
        """Keep the leases of in-flight jobs alive, renewing three times per lease."""
        interval = self.lease_ms / 3000
        while not self._stopping:
            await asyncio.sleep(interval)
            await self.renew_leases()

    async def renew_leases(self) -> set[int]:
        """Renew every in-flight job's lease now; the ids of jobs whose lease was lost."""
        held = [(job.id, job.lease) for job in self._leases.values()]
        if not held:
            return set()
        try:
            lost = await self.store.renew_leases(held, int(time.time() * 1000) + self.lease_ms)
        except Exception:
            # The next beat tries again; a lease outlives two missed beats.
            log.exception("renewing %d leases failed", len(held))
            return set()
        lost &= {job.id for job in self._leases.values()}  # not those committed meanwhile
        for job_id in sorted(lost):
            log.warning(
                "job %s lost its lease while in flight; its outcome will be dropped", job_id
            )
        return lost

    def _stop_renewing(self) -> None:
        """The current task is about to give its job up (a commit, a hand-back): a renewal
        racing that write would only find the lease gone and report it lost."""
        if (task := asyncio.current_task()) is not None:
            self._leases.pop(task, None)

    async def _run(self, job: Job, state: RunState | None) -> None:
        try:
            transition = await self.execute(job, state)
            faults.hit(f"commit.{job.kind.value}")
            if transition.ending_notes:
                faults.hit("commit.deferred_runs")  # a run's end that starts deferred runs
            elif transition.defers:
                faults.hit("commit.defers")  # an answer that adds or aborts defers
            self._stop_renewing()
            applied = await self.store.commit(transition)
        except LeaseLost:
            log.warning("job %s lost its lease; its outcome was dropped", job.id)
            return
        except asyncio.CancelledError:
            raise
        except SignalTaken as exc:
            # Another run took the signal after the reply was read: run the job again, and
            # the reply is then judged against the new holder.
            log.info("job %s raced for a signal (%s); running it again", job.id, exc)
            await self._after_fault(job, state, f"{exc}", delay_ms=0)
            return
        except Exception as exc:
            log.exception("job %s (%s) failed inside the server", job.id, job.kind)
            await self._after_fault(job, state, f"{type(exc).__name__}: {exc}")
            return
        if self.on_committed is not None:
            self.on_committed(transition, state, applied)

    async def _after_fault(
        self, job: Job, state: RunState | None, reason: str, *, delay_ms: int | None = None
    ) -> None:
        """Hand a job back after the server failed on it; fail its run once faults pile up."""
        self._stop_renewing()
        faults = job.faults + 1
        try:
            if faults >= MAX_FAULTS and state is not None and self.give_up is not None:
                message = f"the server failed {faults} times in a row on this run: {reason}"
                transition = self.give_up(job, state, message)
                applied = await self.store.commit(transition)
                log.error("run %s failed after %d server faults", state.run.id, faults)
                if self.on_committed is not None:
                    self.on_committed(transition, state, applied)
                return
        except LeaseLost:
            return
        except Exception:
            log.exception("failing run %s after its faults failed too", job.run_id)
        delay = fault_delay_ms(faults) if delay_ms is None else delay_ms
        try:
            await self.store.release_after_fault(job, int(time.time() * 1000) + delay)
        except Exception:
            # The job stays leased and falls due again when its lease expires.
            log.exception("could not hand job %s back after a fault", job.id)
            return
        self._wake.set()
