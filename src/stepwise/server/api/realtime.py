"""A durable endpoint's stream, relayed from its handler to its client.

When a durable endpoint's run goes async, the client is sent to ``GET
/v1/realtime/sse?token=<realtime_token>``, and every call the server makes to the
handler posts what the handler streams to ``POST /v1/realtime/publish/tee?channel=<run>``:
server-sent-event frames (``inngest.metadata``, ``inngest.stream``, ``inngest.commit``,
... and, at the end, ``inngest.response``). The server forwards those bytes unmodified
and in order. It keeps them with the run (whole frames, each tee's in the order
received), so a subscriber who connects late, or on another node, still gets every byte
from the first; a subscriber on this node is woken at once, others look every
``POLL_S``. The stream ends once it has sent ``inngest.response``, or when the run has
ended and nothing came for ``AFTER_END_S``.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ...errors import ApiError
from ...protocol import is_ulid
from ..engine.endpoints import MAX_STREAM_BYTES
from ..store.records import StreamOutcome
from .auth import require_signing_key
from .responses import JSONResponse
from .state import ServerState

KEEPALIVE_S = 15.0
POLL_S = 0.5
# A tee may still be arriving after its run ended (the SDK posts it while it answers).
AFTER_END_S = 10.0
READ_CHUNKS = 256
_RESPONSE_FRAME = b"event: inngest.response\n"


class FrameSplitter:
    """Cuts a byte stream after its last complete SSE frame: relayed bytes are whole
    frames, so the frames of two tees of one run never interleave mid-frame."""

    def __init__(self) -> None:
        self._held = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        self._held.extend(chunk)
        end = self._held.rfind(b"\n\n")
        if end < 0:
            return b""
        whole = bytes(self._held[: end + 2])
        del self._held[: end + 2]
        return whole

    def rest(self) -> bytes:
        rest, self._held = bytes(self._held), bytearray()
        return rest


def _run_of(value: str | None, what: str) -> str:
    if not value or not is_ulid(value):
        raise ApiError(400, "invalid_channel", f"{what} must be a run id (a ULID)")
    return value.upper()


async def tee(request: Request) -> Response:
    await require_signing_key(request)
    state: ServerState = request.app.state.stepwise
    store = state.engine.store
    run_id = _run_of(request.query_params.get("channel"), "channel")
    if await store.get_endpoint(run_id) is None:
        raise ApiError(404, "run_not_found", "no durable endpoint's run has this id")
    splitter = FrameSplitter()
    relayed = 0

    async def append(data: bytes) -> None:
        nonlocal relayed
        if not data:
            return
        outcome = await store.append_stream(run_id, [data], MAX_STREAM_BYTES)
        if outcome is StreamOutcome.FULL:
            raise ApiError(
                413,
                "stream_too_large",
                f"the run's stream would hold over {MAX_STREAM_BYTES} bytes",
                run_id=run_id,
            )
        relayed += len(data)
        state.streams.appended(run_id)

    async for chunk in request.stream():
        await append(splitter.feed(chunk))
    await append(splitter.rest())
    return JSONResponse({"run_id": run_id, "relayed": relayed})


async def sse(request: Request) -> Response:
    state: ServerState = request.app.state.stepwise
    store = state.engine.store
    token = request.query_params.get("token", "")
    run_id, _, _ = token.partition(".")
    endpoint = await store.get_endpoint(run_id.upper()) if is_ulid(run_id) else None
    if endpoint is None or not hmac.compare_digest(token.encode(), endpoint.stream_token.encode()):
        raise ApiError(401, "invalid_token", "the token does not grant a run's stream")
    run_id = endpoint.run_id

    async def relay() -> AsyncIterator[bytes]:
        after, sent_at, quiet_since = -1, time.monotonic(), time.monotonic()
        with state.streams.subscribe(run_id) as appended:
            while not state.engine.live.closed.is_set():
                appended.clear()
                chunks = await store.read_stream(run_id, after, READ_CHUNKS)
                for seq, chunk in chunks:
                    after = seq
                    yield chunk
                    if any(f.startswith(_RESPONSE_FRAME) for f in chunk.split(b"\n\n")):
                        return  # the handler's final response: nothing follows it
                now = time.monotonic()
                if chunks:
                    sent_at = quiet_since = now
                    continue
                if now - quiet_since >= AFTER_END_S:
                    run = await store.get_run(run_id)
                    if run is None or run.status.terminal:
                        return
                    quiet_since = now
                if now - sent_at >= KEEPALIVE_S:
                    yield b":\n\n"
                    sent_at = now
                try:
                    await asyncio.wait_for(appended.wait(), POLL_S)
                except TimeoutError:
                    pass

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
