"""The jobs of one run, waiting in virtual time: a heap, and one pending job per key."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobKind(StrEnum):
    CALL = "call"
    RESOLVE = "resolve"  # a mocked wait or invoke gets its answer; an invoked child ends
    GATEWAY = "gateway"  # step.fetch and step.ai: one attempt of the request
    ARRIVAL = "arrival"  # an event reaches the server
    WAKE = "wake"
    PAUSE_TIMEOUT = "pause_timeout"
    RUN_TIMEOUT = "run_timeout"


# At one instant: the function's calls first, then events that arrive, then timers.
_RANK = {JobKind.ARRIVAL: 1, JobKind.WAKE: 2, JobKind.PAUSE_TIMEOUT: 2, JobKind.RUN_TIMEOUT: 2}


@dataclass(order=True)
class Job:
    at: int
    rank: int
    seq: int
    kind: JobKind = field(compare=False)
    step_id: str = field(default="step", compare=False)
    attempt: int = field(default=0, compare=False)
    key: str | None = field(default=None, compare=False)
    payload: dict[str, Any] = field(default_factory=dict, compare=False)


class Timeline:
    """Due jobs come out earliest first (FIFO at one instant, by rank)."""

    def __init__(self) -> None:
        self._heap: list[Job] = []
        self._keys: set[str] = set()
        self._seq = 0

    def job(
        self,
        kind: JobKind,
        at: int,
        *,
        step_id: str = "step",
        attempt: int = 0,
        key: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Job:
        self._seq += 1
        return Job(at, _RANK.get(kind, 0), self._seq, kind, step_id, attempt, key, payload or {})

    def add(self, job: Job) -> None:
        # Like the server's job keys: one pending job per key.
        if job.key is not None:
            if job.key in self._keys:
                return
            self._keys.add(job.key)
        heapq.heappush(self._heap, job)

    def schedule(self, kind: JobKind, at: int, **fields: Any) -> None:
        self.add(self.job(kind, at, **fields))

    def pop(self) -> Job | None:
        if not self._heap:
            return None
        job = heapq.heappop(self._heap)
        if job.key is not None:
            self._keys.discard(job.key)
        return job

    def clear(self) -> None:
        """The run ended: nothing it planned happens any more."""
        self._heap.clear()
        self._keys.clear()
