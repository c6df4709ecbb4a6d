"""The serve endpoint, independent of any web framework.

Adapters turn their request into ``handle(method, url, headers, body)`` (or, on sync
frameworks, ``handle_sync``) and the returned ``ServeResponse`` into theirs. GET
introspects, PUT syncs, POST executes.

A ``ServeResponse`` whose ``stream`` is set is a streamed reply (``streaming=``): the
adapter sends its status and headers at once, then each chunk of ``stream`` as it comes
(keep-alive spaces while the function runs, then one JSON chunk with the real status,
headers and body). Adapters that can do this pass ``can_stream=True``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError, RegistrationError
from ..protocol import (
    DEV_EVENT_KEY,
    INTROSPECTION_SCHEMA,
    REQUEST_VERSION,
    SignatureError,
    dumps,
    hash_event_key,
    hash_signing_key,
    headers,
    loads,
    sign,
    split_key,
    to_iso,
    verify,
)
from .call import CallRequest, MalformedCallError
from .client import Stepwise
from .execution import CallResult, Execution
from .function import Function
from .identity import LANGUAGE, REGISTER_SDK_VALUE, SDK_AUTHOR, SDK_HEADER_VALUE, VERSION
from .loop_thread import LoopThread
from .registration import CAPABILITIES, SyncOutcome, register

_DISCOVERY_STEP = "step"

Streaming = Literal["allow", "force"]
# Both official SDKs send a space this often while a streamed reply is being worked on.
KEEPALIVE_INTERVAL_S = 3.0
_STREAMING_VALUES: dict[str, Streaming | None] = {
    "allow": "allow",
    "force": "force",
    "true": "force",
    "1": "force",
    "false": None,
    "0": None,
    "disable": None,
}


@dataclass(frozen=True, slots=True)
class ServeResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    # A streamed reply: send these chunks as they come instead of ``body`` (which is empty).
    stream: AsyncIterator[bytes] | None = None


class _RunStateError(Exception):
    """Fetching a run's events or steps from the server API failed."""


class ServeHandler:
    """Answers the serve endpoint for ``functions`` on behalf of ``client``."""

    def __init__(
        self,
        client: Stepwise,
        functions: Sequence[Function],
        *,
        framework: str = "asgi",
        serve_origin: str | None = None,
        serve_path: str | None = None,
        streaming: Streaming | bool | None = None,
        can_stream: bool = False,
    ) -> None:
        """``streaming``: ``"force"`` (or True) streams every function call's reply,
        ``"allow"`` streams it where the adapter ``can_stream``, None reads
        ``INNGEST_STREAMING`` (off when unset)."""
        config = client.config
        if config.is_production and not config.signing_key:
            raise ConfigError(
                "production mode needs a signing key: pass signing_key or set INNGEST_SIGNING_KEY"
            )
        mode = _streaming_mode(streaming, config.streaming)
        if mode == "force" and not can_stream:
            raise ConfigError(
                f"streaming='force' needs an adapter that can stream replies; {framework!r} "
                "cannot: use streaming='allow' or turn streaming off"
            )
        self.streams = mode is not None and can_stream
        # Calls whose streamed reply is still being worked on, kept until they finish even
        # if the server went away: a step that started runs to its end, as without streaming.
        self._in_flight: set[asyncio.Task[ServeResponse]] = set()
        by_id: dict[str, Function] = {}
        for fn in functions:
            if fn.app_id != client.app_id:
                raise ConfigError(f"{fn!r} belongs to app {fn.app_id!r}, not {client.app_id!r}")
            # An on_failure handler is a function of its own: synced and called by its ID.
            for served in (fn, fn.on_failure):
                if served is None:
                    continue
                if served.id in by_id:
                    raise ConfigError(f"two functions share the ID {served.id!r}")
                by_id[served.id] = served
        self.client = client
        self.functions = by_id
        self.framework = framework
        self._serve_origin = serve_origin or config.serve_origin
        self._serve_path = serve_path or config.serve_path
        self._loop_thread = LoopThread(f"stepwise-{framework}")

    # -- entry point ---------------------------------------------------------------------

    async def handle(
        self,
        method: str,
        url: str,
        request_headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> ServeResponse:
        lowered = {k.lower(): v for k, v in request_headers.items()}
        params = dict(parse_qsl(urlsplit(url).query)) if query is None else dict(query)
        method = method.upper()
        if method in ("GET", "HEAD"):
            return self._introspect(lowered)
        if method == "PUT":
            return await self._sync(url, params, lowered, body)
        if method == "POST":
            return await self._call(params, lowered, body)
        return self._json(405, {"code": "method_not_allowed", "message": f"{method} not allowed"})

    def handle_sync(
        self,
        method: str,
        url: str,
        request_headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str] | None = None,
    ) -> ServeResponse:
        """``handle`` for sync frameworks (WSGI, Lambda): blocks the calling thread.

        The work runs on an event loop thread of this handler's own, shared by concurrent
        requests, so ``def`` and ``async def`` functions both work behind a sync framework.
        """
        return self._loop_thread.run(self.handle(method, url, request_headers, body, query))

    def sync_stream(self, stream: AsyncIterator[bytes]) -> Iterator[bytes]:
        """A streamed reply of ``handle_sync`` as a plain iterator, for a sync framework's
        streaming response: each chunk is awaited on the handler's event loop thread."""
        return self._loop_thread.iterate(stream)

    async def sync(self, serve_url: str, *, deploy_id: str | None = None) -> bool:
        """Register the functions at ``serve_url`` now; returns whether the server changed."""
        outcome = await self._register(serve_url, deploy_id=deploy_id, server_kind=None)
        if not outcome.ok:
            raise RegistrationError(f"sync failed ({outcome.status}): {outcome.message}")
        return outcome.modified

    def serve_url(self, request_url: str) -> str:
        """The URL to register: the request's, unless an origin or path override is set."""
        parts = urlsplit(request_url)
        origin = self._serve_origin or f"{parts.scheme}://{parts.netloc}"
        if "://" not in origin:
            origin = f"{parts.scheme or 'http'}://{origin}"
        path = self._serve_path or parts.path
        return origin.rstrip("/") + "/" + path.lstrip("/")

    # -- GET ------------------------------------------------------------------------------

    def _introspect(self, request_headers: dict[str, str]) -> ServeResponse:
        config = self.client.config
        key = self._verified_key(b"", request_headers) if config.is_production else None
        return self._json(200, self._introspection(authenticated=key is not None), signing_key=key)

    def _introspection(self, *, authenticated: bool) -> dict[str, Any]:
        """The introspection body; with ``authenticated`` (a verified signature in
        production) it tells the app's settings, with key hashes, never keys."""
        config = self.client.config
        body: dict[str, Any] = {
            "schema_version": INTROSPECTION_SCHEMA,
            "function_count": len(self.functions),
            "has_event_key": bool(config.event_key) and config.event_key != DEV_EVENT_KEY,
            "has_signing_key": bool(config.signing_key),
            "has_signing_key_fallback": bool(config.signing_key_fallback),
            "mode": config.mode,
        }
        if authenticated:
            body.update(
                authentication_succeeded=True,
                api_origin=config.api_base_url,
                app_id=config.app_id,
                capabilities={**CAPABILITIES},
                env=config.env,
                event_api_origin=config.event_api_base_url,
                event_key_hash=hash_event_key(config.event_key) if config.event_key else None,
                framework=self.framework,
                sdk_language=LANGUAGE,
                sdk_version=VERSION,
                serve_origin=self._serve_origin,
                serve_path=self._serve_path,
                signing_key_hash=_key_hash(config.signing_key),
                signing_key_fallback_hash=_key_hash(config.signing_key_fallback),
            )
        return body

    # -- PUT ------------------------------------------------------------------------------

    async def _sync(
        self, url: str, params: dict[str, str], request_headers: dict[str, str], body: bytes
    ) -> ServeResponse:
        server_kind = request_headers.get(headers.SERVER_KIND)
        mode = self.client.config.mode
        if server_kind and server_kind != mode:
            message = f"this app runs in {mode} mode; a {server_kind} server asked it to sync"
            return self._json(400, {"code": "server_kind_mismatch", "message": message})
        in_band = request_headers.get(headers.SYNC_KIND) == headers.SYNC_KIND_IN_BAND
        if in_band and self.client.config.allow_in_band_sync:
            return self._sync_in_band(request_headers, body)
        outcome = await self._register(
            self.serve_url(url), deploy_id=params.get("deployId"), server_kind=server_kind
        )
        response = self._json(
            outcome.status, {"message": outcome.message, "modified": outcome.modified}
        )
        response.headers[headers.SYNC_KIND] = headers.SYNC_KIND_OUT_OF_BAND
        return response

    def _sync_in_band(self, request_headers: dict[str, str], body: bytes) -> ServeResponse:
        """Answer the server's PUT with the app's config, signed (in-band sync).

        In production only a request signed with the app's key gets it: the answer tells
        the server where to send calls, and the server acts on it only if signed in turn.
        """
        key: str | None = None
        if self.client.config.is_production:
            key = self._verified_key(body, request_headers)
            if key is None:
                error = {
                    "code": "sig_verification_failed",
                    "message": "missing or invalid signature",
                }
                return self._json(401, error)
        try:
            request = _InBandRequest.model_validate_json(body)
        except ValidationError as exc:
            message = 'an in-band sync request\'s body must be {"url": "<serve URL>"}: '
            error = {"code": "invalid_request", "message": message + exc.errors()[0]["msg"]}
            return self._json(400, error, key)
        serve_url = self.serve_url(request.url)
        answer = {
            "app_id": self.client.app_id,
            "capabilities": {**CAPABILITIES},
            "env": self.client.config.env,
            "framework": self.framework,
            "functions": [fn.get_config(serve_url) for fn in self.functions.values()],
            "inspection": self._introspection(authenticated=key is not None),
            "platform": None,
            "sdk": REGISTER_SDK_VALUE,
            "sdk_author": SDK_AUTHOR,
            "sdk_language": LANGUAGE,
            "sdk_version": VERSION,
            "url": serve_url,
        }
        response = self._json(200, answer, key)
        response.headers[headers.SYNC_KIND] = headers.SYNC_KIND_IN_BAND
        return response

    async def _register(
        self, serve_url: str, *, deploy_id: str | None, server_kind: str | None
    ) -> SyncOutcome:
        return await register(
            self.client,
            list(self.functions.values()),
            serve_url=serve_url,
            framework=self.framework,
            deploy_id=deploy_id,
            server_kind=server_kind,
        )

    # -- POST -----------------------------------------------------------------------------

    async def _call(
        self, params: dict[str, str], request_headers: dict[str, str], body: bytes
    ) -> ServeResponse:
        key: str | None = None
        if self.client.config.is_production:
            key = self._verified_key(body, request_headers)
            if key is None:
                return self._json(
                    401,
                    {"code": "sig_verification_failed", "message": "missing or invalid signature"},
                )
        probe = params.get("probe")
        if probe is not None:
            if probe == "trust":
                return self._respond(200, b"", signing_key=key)
            message = f"unknown probe {probe!r}"
            return self._json(400, {"code": "unknown_probe", "message": message}, key)

        fn_id = params.get("fnId")
        if not fn_id:
            return self._json(400, {"code": "missing_fn_id", "message": "fnId is required"}, key)
        function = self.functions.get(fn_id)
        if function is None:
            message = f"no function {fn_id!r} in app {self.client.app_id!r}"
            return self._json(404, {"code": "function_not_found", "message": message}, key)

        try:
            request = CallRequest.parse(loads(body))
        except (ValueError, MalformedCallError) as exc:
            error = {"code": "malformed_request", "name": "MalformedRequest", "message": str(exc)}
            return self._json(400, error, key, no_retry=True)

        step_id = params.get("stepId") or request_headers.get(headers.STEP_ID) or _DISCOVERY_STEP
        work = self.execute(function, request, None if step_id == _DISCOVERY_STEP else step_id, key)
        if self.streams:
            return self._streamed(work, key)
        return await work

    async def execute(
        self, function: Function, request: CallRequest, target_step: str | None, key: str | None
    ) -> ServeResponse:
        """One call of ``function``, its answer framed (signed with ``key`` if given); a
        durable endpoint's re-entry comes here too (``endpoint.py``)."""
        if request.use_api:
            try:
                request = await self._load_run_state(request)
            except (_RunStateError, httpx.HTTPError, ValueError) as exc:
                error = {"code": "api_fetch_failed", "name": "ApiFetchError", "message": str(exc)}
                return self._json(500, error, key, no_retry=False)
        execution = Execution(
            client=self.client,
            function=function,
            request=request,
            target_step=target_step,
        )
        return self._call_response(await execution.run(), key)

    def _streamed(self, work: Coroutine[Any, Any, ServeResponse], key: str | None) -> ServeResponse:
        """Answer 201 now; send a space until ``work`` is done, then its reply as one chunk.

        The final chunk is ``{"status", "headers", "body", "version"}`` with ``body`` the
        reply's bytes as a JSON string. Its headers carry the reply's own signature, over
        exactly those bytes: the opening 201 is not signed, since what it would vouch for
        (its empty body) is not what the server acts on.
        """
        task = asyncio.ensure_future(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                yield b" "
                done, _ = await asyncio.wait({task}, timeout=KEEPALIVE_INTERVAL_S)
                if done:
                    break
            try:
                reply = task.result()
            except Exception as exc:  # the reply must still end the stream, as an error
                self.client.logger.exception("a streamed call failed")
                error = {"code": "internal_error", "name": type(exc).__name__, "message": str(exc)}
                reply = self._json(500, error, key, no_retry=False)
            yield dumps(
                {
                    "status": reply.status,
                    "headers": reply.headers,
                    "body": reply.body.decode("utf-8"),
                    "version": REQUEST_VERSION,
                }
            )

        opening = self._respond(201, b"", signing_key=None)
        return ServeResponse(opening.status, opening.headers, b"", stream=chunks())

    async def _load_run_state(self, request: CallRequest) -> CallRequest:
        """Fetch events and memos the server left out of an oversized call body."""
        base = f"/v0/runs/{request.run_id}"
        batch = await self.client.api_request("GET", f"{base}/batch")
        actions = await self.client.api_request("GET", f"{base}/actions")
        for response in (batch, actions):
            if response.status_code != 200:
                raise _RunStateError(f"{response.url} answered {response.status_code}")
        events, steps = loads(batch.content), loads(actions.content)
        if not isinstance(events, list) or not isinstance(steps, dict):
            raise _RunStateError("run state from the server API has the wrong shape")
        return request.with_state([e for e in events if isinstance(e, dict)], steps)

    def _call_response(self, result: CallResult, key: str | None) -> ServeResponse:
        response = self._respond(result.status, result.body, signing_key=key)
        response.headers[headers.NO_RETRY] = "true" if result.no_retry else "false"
        if result.retry_at is not None:
            response.headers[headers.RETRY_AFTER] = to_iso(result.retry_at)
        return response

    # -- framing --------------------------------------------------------------------------

    def _verified_key(self, body: bytes, request_headers: dict[str, str]) -> str | None:
        try:
            return verify(
                body, request_headers.get(headers.SIGNATURE), self.client.config.signing_keys
            )
        except SignatureError:
            return None

    def _json(
        self,
        status: int,
        body: Any,
        signing_key: str | None = None,
        *,
        no_retry: bool | None = None,
    ) -> ServeResponse:
        response = self._respond(status, dumps(body), signing_key=signing_key)
        if no_retry is not None:
            response.headers[headers.NO_RETRY] = "true" if no_retry else "false"
        return response

    def _respond(self, status: int, body: bytes, *, signing_key: str | None) -> ServeResponse:
        config = self.client.config
        out = {
            "content-type": "application/json",
            headers.SDK: SDK_HEADER_VALUE,
            headers.USER_AGENT: SDK_HEADER_VALUE,
            headers.REQ_VERSION: str(REQUEST_VERSION),
            headers.FRAMEWORK: self.framework,
            headers.EXPECTED_SERVER_KIND: config.mode,
        }
        if config.env:
            out[headers.ENV] = config.env
        if signing_key is not None:
            # Signed over the raw bytes sent, with the key that verified the request.
            out[headers.SIGNATURE] = sign(body, signing_key)
        return ServeResponse(status=status, headers=out, body=body)


class _InBandRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    url: str = Field(min_length=1)


def _streaming_mode(given: Streaming | bool | None, env: str | None) -> Streaming | None:
    if given is True:
        return "force"
    if given is False:
        return None
    value = given if given is not None else env
    if value is None:
        return None
    try:
        return _STREAMING_VALUES[value.strip().lower()]
    except KeyError:
        where = "streaming" if given is not None else "INNGEST_STREAMING"
        raise ConfigError(
            f"{where} must be 'allow', 'force', true or false, not {value!r}"
        ) from None


def _key_hash(key: str | None) -> str | None:
    if not key:
        return None
    return split_key(hash_signing_key(key))[1]
