"""HTTP requests as durable steps: ``FetchResponse`` and the drop-in ``stepwise.fetch``.

Inside a running function (but outside a ``step.run`` body) ``stepwise.fetch`` is
``ctx.step.fetch`` with the step ID ``"fetch:<METHOD> <url>"``: the server makes the
request and the response is memoized. Anywhere else it is a plain request with httpx,
returning the same ``FetchResponse``, so the same code works in and out of functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import ConfigError
from ..protocol import loads
from .current import execution_var, in_step_var

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """An HTTP response, whether the server made the request (a step) or this process did."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    """Lower-case names; repeated headers joined with ``","``."""
    text: str = ""
    url: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        return loads(self.text)

    @classmethod
    def from_memo(cls, data: object) -> FetchResponse:
        """From the ``data`` of a Gateway step's memo: ``{url, headers, body, status_code}``."""
        raw = data if isinstance(data, Mapping) else {}
        status = raw.get("status_code")
        headers = raw.get("headers")
        body = raw.get("body")
        url = raw.get("url")
        return cls(
            status_code=int(status) if isinstance(status, int | float) else 0,
            headers={str(k).lower(): str(v) for k, v in headers.items()}
            if isinstance(headers, Mapping)
            else {},
            text=body if isinstance(body, str) else "" if body is None else str(body),
            url=url if isinstance(url, str) else "",
        )

    @classmethod
    def from_httpx(cls, response: httpx.Response) -> FetchResponse:
        names = dict.fromkeys(k.lower() for k in response.headers)
        return cls(
            status_code=response.status_code,
            headers={name: ",".join(response.headers.get_list(name)) for name in names},
            text=response.text,
            url=str(response.url),
        )


def request_options(
    url: str,
    method: str,
    headers: Mapping[str, str] | None,
    body: str | bytes | None,
) -> dict[str, Any]:
    """The Gateway op's ``opts``, validated: the server replays them as the request."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"fetch needs an http(s) URL, not {url!r}")
    if not isinstance(method, str) or not method.strip():
        raise ConfigError("fetch needs an HTTP method")
    wire_headers: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigError("fetch headers must map strings to strings")
        wire_headers[name] = value
    opts: dict[str, Any] = {"url": url, "method": method.strip().upper(), "headers": wire_headers}
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("a fetch body must be text (UTF-8)") from exc
    if body is not None:
        if not isinstance(body, str):
            raise ConfigError("a fetch body must be str or bytes")
        opts["body"] = body
    return opts


def _new_http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=_TIMEOUT)


async def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
) -> FetchResponse:
    """Make an HTTP request; durably (as a step) when called from a function's handler."""
    opts = request_options(url, method, headers, body)
    execution = execution_var.get()
    if (
        execution is not None
        and not in_step_var.get()
        and execution.loop is asyncio.get_running_loop()
    ):
        step_id = f"fetch:{opts['method']} {url}"
        return await execution.step_tools.fetch(
            step_id, url, method=opts["method"], headers=headers, body=body
        )
    http = execution.client.async_http() if execution is not None else _new_http_client()
    async with http:
        response = await http.request(
            opts["method"], url, headers=opts["headers"], content=opts.get("body")
        )
    return FetchResponse.from_httpx(response)
