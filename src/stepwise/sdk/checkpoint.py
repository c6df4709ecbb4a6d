"""Async checkpointing: consecutive steps run inside one call request, each result saved
through ``POST /v1/checkpoint/{run_id}/async`` before the handler goes on.

Without it every step costs a call request of its own: the SDK answers ``[StepRun]`` and
the server calls again to find the next step. With it (the default, as in the JS SDK 4.x)
a run of sequential steps costs one call, and each step's result is still committed by the
server before the next step's code runs (``buffered_steps=1``).

A call checkpoints only when the server sent the function's internal id (``ctx.fn_id``)
and the queue item it dispatched (``ctx.qi_id``), the call is a discovery (no ``stepId``)
and the server did not force step planning (``ctx.disable_immediate_execution``); and
only if neither the function nor its client turned checkpointing off. ``Execution``
decides when to checkpoint; ``Checkpointer`` buffers the steps and posts them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import ConfigError
from ..protocol import GeneratorOp, dumps, headers
from .options import Duration, duration_to_delta

if TYPE_CHECKING:
    from .call import CallRequest
    from .client import Stepwise
    from .function import Function

# The JS SDK's retry of a failed checkpoint: 5 attempts, 100 ms * 2^(n-1) + up to 100 ms.
POST_ATTEMPTS = 5
POST_BASE_DELAY_S = 0.1


@dataclass(frozen=True, slots=True)
class CheckpointConfig:
    """How a function checkpoints (``checkpointing=CheckpointConfig(...)``).

    ``max_runtime``: once a call has run this long, the next new step is not run in it
    but planned, and the server calls again for it (0 turns the limit off).
    ``buffered_steps``: how many step results are held before they are posted together;
    above 1, the handler goes on before the results held are saved, so a crash of the app
    re-runs them. ``max_interval``: held results are posted at the latest this long after
    the first of them, even if the buffer is not full (0 or None: no such limit).
    """

    max_runtime: Duration = 10
    buffered_steps: int = 1
    max_interval: Duration | None = None

    def __post_init__(self) -> None:
        duration_to_delta(self.max_runtime, what="checkpointing max_runtime")
        if self.max_interval is not None:
            duration_to_delta(self.max_interval, what="checkpointing max_interval")
        steps = self.buffered_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError("checkpointing buffered_steps must be an int of at least 1")

    @property
    def max_runtime_s(self) -> float:
        return duration_to_delta(self.max_runtime, what="max_runtime").total_seconds()

    @property
    def max_interval_s(self) -> float:
        if self.max_interval is None:
            return 0.0
        return duration_to_delta(self.max_interval, what="max_interval").total_seconds()


Checkpointing = bool | CheckpointConfig
"""What ``checkpointing=`` takes: on with defaults, off, or on with these settings."""

DEFAULT_CONFIG = CheckpointConfig()


def check_checkpointing(value: Checkpointing | None, *, what: str) -> Checkpointing | None:
    if value is None or isinstance(value, bool | CheckpointConfig):
        return value
    raise ConfigError(f"{what} checkpointing must be True, False or a CheckpointConfig")


def effective_config(
    function: Checkpointing | None, client: Checkpointing | None
) -> CheckpointConfig | None:
    """The function's setting, else its client's, else on; None when off."""
    chosen = function if function is not None else client
    if chosen is None or chosen is True:
        return DEFAULT_CONFIG
    if chosen is False:
        return None
    return chosen


class Flushed(Enum):
    SAVED = "saved"
    STALE = "stale"
    """The server answered 409: this call is no longer the run's current dispatch."""
    FAILED = "failed"
    """Every attempt failed: the steps go back to the server in the call's answer."""


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What identifies the call to the server, echoed in every checkpoint."""

    run_id: str
    fn_id: str
    queue_item: str
    request_id: str | None
    generation: int | None
    started_at_ms: int


def checkpointer_for(
    client: Stepwise,
    function: Function,
    request: CallRequest,
    *,
    target_step: str | None,
    request_headers: Mapping[str, str],
) -> Checkpointer | None:
    """A checkpointer for this call, or None when the call runs without checkpoints."""
    if target_step is not None or request.disable_immediate_execution or not request.fn_id:
        return None
    config = effective_config(function.checkpointing, client.checkpointing)
    if config is None or not request.queue_item:
        # Without a queue item the JS SDK's checkpoint fails locally after every step and
        # hands the step back: the answers are those of a call without checkpoints.
        return None
    generation = request_headers.get(headers.GENERATION_ID)
    dispatch = Dispatch(
        run_id=request.run_id,
        fn_id=request.fn_id,
        queue_item=request.queue_item,
        request_id=request_headers.get(headers.REQUEST_ID),
        generation=int(generation) if generation and generation.strip().isdigit() else None,
        started_at_ms=int(time.time() * 1000),
    )
    return Checkpointer(client, config, dispatch)


class Checkpointer:
    """The steps one call ran and has not saved yet, and the POST that saves them."""

    def __init__(self, client: Stepwise, config: CheckpointConfig, dispatch: Dispatch) -> None:
        self.client = client
        self.config = config
        self.dispatch = dispatch
        self.buffer: list[GeneratorOp] = []
        self.stale = False
        """A checkpoint got a 409: the call must stop (``StaleDispatchError``)."""
        self._started = time.monotonic()
        self._max_runtime = config.max_runtime_s
        self._max_interval = config.max_interval_s
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timed_flush: asyncio.Task[None] | None = None
        self._lazy: Callable[[], list[GeneratorOp]] = list
        # One client for the call's checkpoints, so they share a connection; closed with
        # the call (``close``), as nothing outlives the event loop that serves it.
        self._http: httpx.AsyncClient | None = None

    def runtime_exceeded(self) -> bool:
        return 0 < self._max_runtime <= time.monotonic() - self._started

    async def add(self, op: GeneratorOp, lazy: Callable[[], list[GeneratorOp]]) -> Flushed | None:
        """Hold a step's result; post what is held once the buffer is full. None: held."""
        self.buffer.append(op)
        if len(self.buffer) >= self.config.buffered_steps:
            return await self.flush(lazy)
        if self._max_interval > 0 and self._timer is None:
            self._lazy = lazy
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._max_interval, self._flush_on_timer)
        return None

    def _flush_on_timer(self) -> None:
        self._timer = None
        self._timed_flush = asyncio.ensure_future(self._timed())

    async def _timed(self) -> None:
        # A failed timed flush keeps the steps held: the next flush or the answer takes them.
        if await self.flush(self._lazy) is Flushed.STALE:
            self.stale = True

    async def flush(self, lazy: Callable[[], list[GeneratorOp]]) -> Flushed:
        """Post the held steps (and the defers made since the last post) until one attempt
        is answered 2xx or 409, or every attempt failed."""
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            steps = [*self.buffer, *lazy()]
            outcome = await self._post(steps)
            if outcome is Flushed.FAILED:
                self.buffer = steps  # answered with the call instead, defers included
            else:
                self.buffer = []
                self.stale = self.stale or outcome is Flushed.STALE
            return outcome

    async def settle(self) -> None:
        """Wait for a flush the interval timer started; stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._timed_flush is not None:
            await asyncio.wait([self._timed_flush])

    async def close(self) -> None:
        await self.settle()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _post(self, steps: list[GeneratorOp]) -> Flushed:
        dispatch = self.dispatch
        body: dict[str, Any] = {
            "run_id": dispatch.run_id,
            "fn_id": dispatch.fn_id,
            "qi_id": dispatch.queue_item,
            "request_id": dispatch.request_id,
            "request_started_at": dispatch.started_at_ms,
            "steps": [op.to_wire() for op in steps],
        }
        if dispatch.generation is not None:
            body["generation_id"] = dispatch.generation
        path = f"/v1/checkpoint/{dispatch.run_id}/async"
        for attempt in range(POST_ATTEMPTS):
            if attempt:
                await asyncio.sleep(POST_BASE_DELAY_S * 2 ** (attempt - 1) + random.random() / 10)
            body["ts"] = int(time.time() * 1000)
            try:
                if self._http is None:
                    self._http = self.client.async_http()
                response = await self.client.api_request(
                    "POST", path, content=dumps(body), http=self._http
                )
            except httpx.HTTPError as exc:
                self.client.logger.debug("checkpoint of run %s failed: %s", dispatch.run_id, exc)
                continue
            if response.status_code == 409:
                return Flushed.STALE
            if response.is_success:
                return Flushed.SAVED
            self.client.logger.debug(
                "checkpoint of run %s answered %s", dispatch.run_id, response.status_code
            )
        self.client.logger.warning(
            "could not checkpoint run %s; its steps go back with the call's answer",
            dispatch.run_id,
        )
        return Flushed.FAILED


def stale_dispatch_error(run_id: str) -> dict[str, Any]:
    """The body of the 400 that ends a call whose checkpoint got a 409 (as the JS SDK's)."""
    return {
        "name": "StaleDispatchError",
        "message": f"Stale dispatch: checkpoint returned 409 (run {run_id})",
        "stack": "",
        "code": "stale_dispatch",
    }
