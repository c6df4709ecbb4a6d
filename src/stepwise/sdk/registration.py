"""Out-of-band sync: the app tells the server its serve URL and function configs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ..protocol import REQUEST_VERSION, headers, loads
from .client import Stepwise
from .function import Function
from .identity import REGISTER_SDK_VALUE

REGISTER_PATH = "/fn/register"
CAPABILITIES = {"trust_probe": "v1", "connect": "v1"}


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """How a register call went, in the terms the PUT reply reports."""

    status: int
    message: str
    modified: bool

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def register_body(
    client: Stepwise, functions: Sequence[Function], *, serve_url: str, framework: str
) -> dict[str, Any]:
    return {
        "url": serve_url,
        "deployType": "ping",
        "appName": client.app_id,
        "sdk": REGISTER_SDK_VALUE,
        "v": "0.1",
        "framework": framework,
        "functions": [fn.get_config(serve_url) for fn in functions],
        "capabilities": CAPABILITIES,
    }


async def register(
    client: Stepwise,
    functions: Sequence[Function],
    *,
    serve_url: str,
    framework: str,
    deploy_id: str | None = None,
    server_kind: str | None = None,
) -> SyncOutcome:
    """POST the app's config to ``<api>/fn/register``; never raises for HTTP failures."""
    extra = {
        headers.FRAMEWORK: framework,
        headers.REQ_VERSION: str(REQUEST_VERSION),
        headers.SYNC_KIND: "out_of_band",
        # Lets a server refuse a sync meant for a server of the other kind.
        headers.EXPECTED_SERVER_KIND: server_kind or client.config.mode,
    }
    body = register_body(client, functions, serve_url=serve_url, framework=framework)
    try:
        response = await client.api_request(
            "POST",
            REGISTER_PATH,
            body=body,
            extra_headers=extra,
            params={"deployId": deploy_id} if deploy_id else None,
        )
    except httpx.HTTPError as exc:
        return SyncOutcome(status=500, message=f"could not reach the server: {exc}", modified=False)
    return _outcome(response)


def _outcome(response: httpx.Response) -> SyncOutcome:
    try:
        payload = loads(response.content) if response.content else {}
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    status = response.status_code
    # Some servers put the real outcome in the body's ``status`` (the JS SDK reads it there).
    body_status = payload.get("status")
    if isinstance(body_status, int) and not isinstance(body_status, bool) and body_status >= 400:
        status = body_status
    modified = bool(payload.get("modified", False))
    if 200 <= status < 300:
        return SyncOutcome(status=status, message="Successfully registered", modified=modified)
    message = payload.get("error") or payload.get("message") or response.text[:500]
    return SyncOutcome(status=status, message=str(message) or f"HTTP {status}", modified=False)
