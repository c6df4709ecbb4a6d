"""Calling an app's serve endpoint: the request body, headers and signature, and the reply."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from ... import protocol
from ...protocol import headers as h
from ..metrics import Metrics
from ..store.records import EndpointRecord, RunState
from .defers import defers_map
from .outbound import DestinationPolicy, OutboundClient, OutboundError, OutboundResponse


@dataclass(frozen=True, slots=True)
class SdkReply:
    status: int  # 0 when the request never got an answer
    headers: Mapping[str, str]  # case-insensitive
    body: Any  # parsed JSON, or None
    raw: bytes
    transport_error: str | None = None
    # Set when the server signs its requests and this reply's signature does not hold: then
    # nothing in it (status, headers, ops) is the app's word.
    signature_error: str | None = None

    @property
    def from_sdk(self) -> bool:
        return h.SDK in self.headers

    def header(self, name: str) -> str | None:
        value: str | None = self.headers.get(name)
        return value


@lru_cache(maxsize=16384)
def target_url(base: str, step_id: str) -> str:
    """The function's URL with ``stepId`` set to the step to run (``step`` = discovery)."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "stepId"]
    query.append(("stepId", step_id))
    return urlunsplit(parts._replace(query=urlencode(query)))


# Past this much stored state the body carries none of it: the SDK fetches it from /v0.
USE_API_BYTES = 4 * 1024 * 1024 - 1024


def build_call_body(
    state: RunState,
    *,
    step_id: str,
    attempt: int,
    max_attempts: int,
    force_step_plan: bool,
    fn_id: str,
    queue_item: str,
) -> dict[str, Any]:
    """The call request's body. ``fn_id`` (the function's internal id) turns the JS SDK's
    checkpointing on; ``queue_item`` names the job, and the SDK echoes it in checkpoints."""
    events = [e.to_wire() for e in state.events]
    stack = [s.step_id for s in state.steps]
    use_api = state.state_bytes > USE_API_BYTES
    ctx: dict[str, Any] = {
        "fn_id": fn_id,
        "run_id": state.run.id,
        "env": "",
        "step_id": "step",
        "attempt": attempt,
        "max_attempts": max_attempts,
        "stack": {"stack": stack, "current": len(stack)},
        "qi_id": queue_item,
        "disable_immediate_execution": force_step_plan,
        "use_api": use_api,
    }
    return {
        "event": events[0] if events else {},
        "events": [] if use_api else events,
        "steps": {} if use_api else {s.step_id: s.memo for s in state.steps},
        "ctx": ctx,
        # Every defer the run has, so that a replay does not add one again (JS SDK 4.x).
        "defers": defers_map(state.defers),
        "version": state.run.request_version,
        # Both places: the Python SDK reads this one, the JS SDK reads ctx.use_api.
        "use_api": use_api,
    }


class Driver:
    """Outbound HTTP to apps, on one pooled aiohttp session (keep-alive, no per-call setup)."""

    def __init__(
        self,
        *,
        signing_key: str | None,
        server_kind: str,
        timeout_s: float,
        max_connections: int,
        outbound: OutboundClient | None = None,
        metrics: Metrics | None = None,
        accept_unsigned_stream_bodies: bool = False,
    ) -> None:
        self.signing_key = signing_key
        # The official Python SDK signs a streamed reply only at its start (see
        # ``reply_signature_problem``); an operator may choose to act on such replies.
        self.accept_unsigned_stream_bodies = accept_unsigned_stream_bodies
        self.metrics = metrics
        self.server_kind = server_kind
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=10.0)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # Requests to URLs a function names (step.fetch) go through their own guarded client.
        self.outbound = outbound or OutboundClient(DestinationPolicy(), timeout_s=timeout_s)

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session belongs to the running event loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.outbound.close()

    async def call(
        self,
        url: str,
        body: dict[str, Any],
        *,
        run_id: str,
        step_id: str,
        request_version: int,
        job_id: str,
        generation: int,
        function_slug: str,
    ) -> SdkReply:
        """POST a call request; ``job_id`` and ``generation`` name this dispatch of the job
        (the JS SDK reads them from headers only, and echoes the generation in checkpoints)."""
        # SDKs re-canonicalize before checking a signature, so only a signed body needs the
        # (slower) canonical form; byte-for-byte it is what we sign.
        payload = protocol.canonical_json(body) if self.signing_key else protocol.dumps(body)
        headers = {
            "content-type": "application/json",
            h.RUN_ID: run_id,
            h.STEP_ID: step_id,
            h.REQ_VERSION: str(request_version),
            h.REQUEST_ID: protocol.new_ulid(),
            h.JOB_ID: job_id,
            h.GENERATION_ID: str(generation),
        }
        if self.signing_key:
            headers[h.SIGNATURE] = protocol.sign(payload, self.signing_key)
        return await self._send("POST", target_url(url, step_id), payload, headers, function_slug)

    async def reenter(
        self,
        endpoint: EndpointRecord,
        body: str,
        *,
        run_id: str,
        step_id: str,
        request_version: int,
        job_id: str,
        generation: int,
        force_step_plan: bool,
        function_slug: str,
    ) -> SdkReply:
        """Call a durable endpoint's handler again for its run: the original method, URL
        and body, and the headers that tell the SDK this is the server re-entering run
        ``run_id`` (``X-Run-ID`` with ``X-Inngest-Signature``, empty when the server signs
        nothing). The JS SDK reads the run's events and steps from ``/v0/runs``."""
        payload = b"" if endpoint.method in ("GET", "HEAD") else body.encode()
        headers = {
            h.RUN_ID: run_id,
            h.SIGNATURE: "",
            h.REQ_VERSION: str(request_version),
            h.REQUEST_ID: protocol.new_ulid(),
            h.JOB_ID: job_id,
            h.GENERATION_ID: str(generation),
        }
        if endpoint.content_type:
            headers["content-type"] = endpoint.content_type
        if self.signing_key:
            headers[h.SIGNATURE] = protocol.sign(protocol.reentry_body(payload), self.signing_key)
        if force_step_plan:
            headers[h.FORCE_STEP_PLAN] = "true"
        if step_id != "step":
            headers[h.STEP_ID] = step_id
        return await self._send(endpoint.method, endpoint.url, payload, headers, function_slug)

    async def _send(
        self, method: str, url: str, payload: bytes, headers: dict[str, str], function_slug: str
    ) -> SdkReply:
        sent = time.perf_counter()
        try:
            async with self._client().request(
                method, url, data=payload, headers=headers, allow_redirects=False
            ) as response:
                raw = await response.read()
                status, reply_headers = response.status, response.headers
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if self.metrics is not None:
                self.metrics.observe_call(function_slug, time.perf_counter() - sent)
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return SdkReply(0, CIMultiDictProxy(CIMultiDict()), None, b"", transport_error=message)
        if self.metrics is not None:
            self.metrics.observe_call(function_slug, time.perf_counter() - sent)
        reply = SdkReply(status, reply_headers, _parse_json(raw), raw)
        streamed = reply.status == 201
        opening_signature = reply.header(h.SIGNATURE) if streamed else None
        if streamed:
            reply = _unwrap_stream(reply)
        if self.signing_key and reply.transport_error is None:
            problem = reply_signature_problem(
                reply,
                self.signing_key,
                streamed=streamed,
                opening_signature=opening_signature,
                accept_unsigned_stream_body=self.accept_unsigned_stream_bodies,
            )
            if problem is not None:
                return dataclasses.replace(reply, signature_error=problem)
        return reply

    async def fetch(self, opts: dict[str, Any]) -> dict[str, Any]:
        """Make a ``step.fetch`` request for a run; any status, 3xx included, is an answer.

        Returns the memo data the protocol defines: ``{url, headers, body, status_code}``
        with repeated headers joined by commas. Raises ``OutboundError``.
        """
        url = opts.get("url")
        if not isinstance(url, str):
            raise OutboundError(f"step.fetch needs a URL, got {url!r}", retryable=False)
        method = str(opts.get("method") or "GET").upper()
        given = opts.get("headers")
        headers = {str(k): str(v) for k, v in given.items()} if isinstance(given, dict) else {}
        body = opts.get("body")
        response = await self.outbound.request(
            method, url, headers=headers, body=body.encode() if isinstance(body, str) else None
        )
        joined: dict[str, str] = {}
        for key, value in response.headers:
            joined[key] = f"{joined[key]},{value}" if key in joined else value
        return {
            "url": url,
            "headers": joined,
            "body": response.body.decode("utf-8", "replace"),
            "status_code": response.status,
        }

    async def ping(self, url: str, *, guarded: bool = False) -> OutboundResponse:
        """Ask an app to sync itself (the PUT the dev server sends).

        A server with a signing key asks for an in-band sync (``X-Inngest-Sync-Kind:
        in_band``), as Inngest Cloud does: an app that can answers with its config, signed,
        and one that cannot registers out of band as it would anyway. A server without
        a key asks for nothing, as Inngest's dev server: an app in production mode would
        refuse an unsigned in-band request.

        ``guarded`` sends it through the outbound client, which refuses the addresses the
        server must not reach for a URL someone other than its operator chose. Raises
        ``OutboundError`` when there is no answer (or the destination is refused).
        """
        body = protocol.canonical_json({"url": url})
        headers = {"content-type": "application/json", h.SERVER_KIND: self.server_kind}
        if self.signing_key:
            headers[h.SIGNATURE] = protocol.sign(body, self.signing_key)
            headers[h.SYNC_KIND] = h.SYNC_KIND_IN_BAND
        if guarded:
            return await self.outbound.request("PUT", url, headers=headers, body=body)
        try:
            async with self._client().put(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=30)
            ) as response:
                text = await response.read()
                pairs = tuple((str(k).lower(), v) for k, v in response.headers.items())
                return OutboundResponse(response.status, pairs, text)
        except TimeoutError as exc:
            raise OutboundError(f"no answer from {url} within 30 s", retryable=True) from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise OutboundError(f"{type(exc).__name__}: {exc}", retryable=True) from exc


# What the official Python SDK signs when it streams: the opening 201 response's body,
# which it takes to be ``null``; the final chunk it streams after carries no signature.
_UNSIGNED_STREAM_OPENING = b"null"


def reply_signature_problem(
    reply: SdkReply,
    signing_key: str,
    *,
    streamed: bool,
    opening_signature: str | None = None,
    accept_unsigned_stream_body: bool = False,
) -> str | None:
    """Why ``reply`` is not proven to come from an app holding ``signing_key``; None if it is.

    Both official SDKs sign a reply to a signed request over the raw bytes of its body
    (no canonical JSON), with a fresh timestamp; we allow the same clock skew they allow
    us. A streamed reply's final chunk carries its own headers, and the signature there
    covers the final body: that is the body acted on, so that is what must be signed (the
    JS SDK and ours do this).

    The official Python SDK (0.5.x) instead signs the opening ``201`` over ``null`` and
    leaves the final chunk unsigned. That proves an app holding the key answered within
    the allowed skew, but not what it streamed: whoever can relay that answer can put any
    body behind it. Such a reply is refused unless ``accept_unsigned_stream_body`` (the
    operator's ``--accept-unsigned-stream-bodies``) says to take the opening as enough.
    """
    try:
        protocol.verify(reply.raw, reply.header(h.SIGNATURE), [signing_key], canonicalize=False)
    except protocol.SignatureError as exc:
        reason = exc
    else:
        return None
    kind = "streamed reply (final status" if streamed else "reply (HTTP"
    what = f"{kind} {reply.status})"
    if streamed and reply.header(h.SIGNATURE) is None and opening_signature is not None:
        try:
            protocol.verify(
                _UNSIGNED_STREAM_OPENING, opening_signature, [signing_key], canonicalize=False
            )
        except protocol.SignatureError:
            pass
        else:
            if accept_unsigned_stream_body:
                return None
            return (
                f"the app's {what} is signed only at its start, over null, and not over the "
                "body it streamed (the official Python SDK streams this way), so nothing proves "
                "that body is the app's: turn the app's streaming off (INNGEST_STREAMING), or "
                "start the server with --accept-unsigned-stream-bodies to act on such replies. "
                "In production the server acts only on signed replies"
            )
    if reply.header(h.SIGNATURE) is None:
        where = " in its final chunk's headers" if streamed else ""
        problem = f"the app's {what} is not signed (no X-Inngest-Signature header{where})"
    else:
        problem = f"the app's {what} has a bad signature: {reason}"
    if reply.status == 401:
        problem += (
            "; a 401 usually means the app could not verify the server's request: "
            "check that both use the same signing key"
        )
    elif streamed:
        problem += (
            "; a streamed reply must be signed over its final body in the final chunk's headers"
        )
    return f"{problem}. In production the server acts only on signed replies"


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return protocol.loads(raw)
    except ValueError:
        return None


def _unwrap_stream(reply: SdkReply) -> SdkReply:
    """A streamed reply: keep-alive spaces, then ``{"status", "headers", "body"}``."""
    final = reply.body
    if not isinstance(final, dict) or not isinstance(final.get("status"), int):
        return SdkReply(
            0, reply.headers, None, reply.raw, transport_error="malformed streamed response"
        )
    merged: CIMultiDict[str] = CIMultiDict(reply.headers)
    # The opening's signature covers the opening, never the final body: only the final
    # chunk's own signature may vouch for that.
    merged.popall(h.SIGNATURE, None)
    final_headers = final.get("headers")
    for k, v in (final_headers if isinstance(final_headers, dict) else {}).items():
        merged[str(k)] = str(v)
    inner = final.get("body")
    raw = inner.encode() if isinstance(inner, str) else protocol.dumps(inner)
    body = _parse_json(raw) if isinstance(inner, str) else inner
    return SdkReply(final["status"], CIMultiDictProxy(merged), body, raw)
