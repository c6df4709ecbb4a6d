"""The serve endpoint, independent of any web framework.

Adapters turn their request into ``handle(method, url, headers, body)`` and the
returned ``ServeResponse`` into theirs. GET introspects, PUT syncs, POST executes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

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
from .identity import LANGUAGE, SDK_HEADER_VALUE, VERSION
from .registration import CAPABILITIES, SyncOutcome, register

_DISCOVERY_STEP = "step"


@dataclass(frozen=True, slots=True)
class ServeResponse:
    status: int
    headers: dict[str, str]
    body: bytes


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
    ) -> None:
        config = client.config
        if config.is_production and not config.signing_key:
            raise ConfigError(
                "production mode needs a signing key: pass signing_key or set INNGEST_SIGNING_KEY"
            )
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
            return await self._sync(url, params, lowered)
        if method == "POST":
            return await self._call(params, lowered, body)
        return self._json(405, {"code": "method_not_allowed", "message": f"{method} not allowed"})

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
        body: dict[str, Any] = {
            "schema_version": INTROSPECTION_SCHEMA,
            "function_count": len(self.functions),
            "has_event_key": bool(config.event_key) and config.event_key != DEV_EVENT_KEY,
            "has_signing_key": bool(config.signing_key),
            "has_signing_key_fallback": bool(config.signing_key_fallback),
            "mode": config.mode,
        }
        key = self._verified_key(b"", request_headers) if config.is_production else None
        if key is not None:
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
        return self._json(200, body, signing_key=key)

    # -- PUT ------------------------------------------------------------------------------

    async def _sync(
        self, url: str, params: dict[str, str], request_headers: dict[str, str]
    ) -> ServeResponse:
        server_kind = request_headers.get(headers.SERVER_KIND)
        mode = self.client.config.mode
        if server_kind and server_kind != mode:
            message = f"this app runs in {mode} mode; a {server_kind} server asked it to sync"
            return self._json(400, {"code": "server_kind_mismatch", "message": message})
        outcome = await self._register(
            self.serve_url(url), deploy_id=params.get("deployId"), server_kind=server_kind
        )
        response = self._json(
            outcome.status, {"message": outcome.message, "modified": outcome.modified}
        )
        response.headers[headers.SYNC_KIND] = "out_of_band"
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
        if request.use_api:
            try:
                request = await self._load_run_state(request)
            except (_RunStateError, httpx.HTTPError, ValueError) as exc:
                error = {"code": "api_fetch_failed", "name": "ApiFetchError", "message": str(exc)}
                return self._json(500, error, key, no_retry=False)

        step_id = params.get("stepId") or request_headers.get(headers.STEP_ID) or _DISCOVERY_STEP
        execution = Execution(
            client=self.client,
            function=function,
            request=request,
            target_step=None if step_id == _DISCOVERY_STEP else step_id,
        )
        return self._call_response(await execution.run(), key)

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


def _key_hash(key: str | None) -> str | None:
    if not key:
        return None
    return split_key(hash_signing_key(key))[1]
