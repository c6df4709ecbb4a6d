"""Calling an app's serve endpoint: the request body, headers and signature, and the reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from ... import protocol
from ...protocol import headers as h
from ..store.records import RunState


@dataclass(frozen=True, slots=True)
class SdkReply:
    status: int  # 0 when the request never got an answer
    headers: httpx.Headers
    body: Any  # parsed JSON, or None
    raw: bytes
    transport_error: str | None = None

    @property
    def from_sdk(self) -> bool:
        return h.SDK in self.headers

    def header(self, name: str) -> str | None:
        value: str | None = self.headers.get(name)
        return value


def target_url(base: str, step_id: str) -> str:
    """The function's URL with ``stepId`` set to the step to run (``step`` = discovery)."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "stepId"]
    query.append(("stepId", step_id))
    return urlunsplit(parts._replace(query=urlencode(query)))


def build_call_body(
    state: RunState, *, step_id: str, attempt: int, max_attempts: int, force_step_plan: bool
) -> dict[str, Any]:
    events = [e.to_wire() for e in state.events]
    stack = [s.step_id for s in state.steps]
    ctx: dict[str, Any] = {
        # Empty on purpose: the JS SDK switches to checkpointing when it sees a function id.
        "fn_id": "",
        "run_id": state.run.id,
        "env": "",
        "step_id": "step",
        "attempt": attempt,
        "max_attempts": max_attempts,
        "stack": {"stack": stack, "current": len(stack)},
        "disable_immediate_execution": force_step_plan,
        "use_api": False,
    }
    return {
        "event": events[0] if events else {},
        "events": events,
        "steps": {s.step_id: s.memo for s in state.steps},
        "ctx": ctx,
        "version": state.run.request_version,
        "use_api": False,
    }


class Driver:
    def __init__(
        self, *, signing_key: str | None, server_kind: str, timeout_s: float, max_connections: int
    ) -> None:
        self.signing_key = signing_key
        self.server_kind = server_kind
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def call(
        self, url: str, body: dict[str, Any], *, run_id: str, step_id: str, request_version: int
    ) -> SdkReply:
        payload = protocol.canonical_json(body)
        headers = {
            "content-type": "application/json",
            h.RUN_ID: run_id,
            h.STEP_ID: step_id,
            h.REQ_VERSION: str(request_version),
            h.REQUEST_ID: protocol.new_ulid(),
        }
        if self.signing_key:
            headers[h.SIGNATURE] = protocol.sign(payload, self.signing_key)
        try:
            response = await self._client.post(
                target_url(url, step_id), content=payload, headers=headers
            )
        except httpx.HTTPError as exc:
            return SdkReply(
                0, httpx.Headers(), None, b"", transport_error=f"{type(exc).__name__}: {exc}"
            )
        raw = response.content
        reply = SdkReply(response.status_code, response.headers, _parse_json(raw), raw)
        if reply.status == 201:
            return _unwrap_stream(reply)
        return reply

    async def ping(self, url: str) -> httpx.Response:
        """Ask an app to sync itself (the PUT the dev server sends)."""
        body = protocol.canonical_json({"url": url})
        headers = {"content-type": "application/json", h.SERVER_KIND: self.server_kind}
        if self.signing_key:
            headers[h.SIGNATURE] = protocol.sign(body, self.signing_key)
        return await self._client.put(url, content=body, headers=headers, timeout=30.0)


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
    merged = httpx.Headers(reply.headers)
    for k, v in (final.get("headers") or {}).items():
        merged[str(k)] = str(v)
    inner = final.get("body")
    raw = inner.encode() if isinstance(inner, str) else protocol.dumps(inner)
    body = _parse_json(raw) if isinstance(inner, str) else inner
    return SdkReply(final["status"], merged, body, raw)
