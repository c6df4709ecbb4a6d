"""The guarded HTTP client for requests the server makes to URLs an app chooses.

``step.fetch`` (and later ``step.ai.infer``) lets a function name any URL and have the
*server* call it. In production that must not turn the server into a way into its own
network, so this client:

* follows no redirects: a 3xx is the answer, as any status is;
* keeps at most ``max_body_bytes`` of a response (counted after decompression) and fails
  the request past that instead of handing back a truncated body;
* gives the whole request ``timeout_s``;
* speaks only ``http`` and ``https``, sends no cookies it was given before, ignores proxy
  settings from the environment;
* checks every address it connects to against a ``DestinationPolicy``: a resolver that
  refuses a name if any of its addresses is off-limits (a clear error), and a socket
  factory that checks the exact address each socket connects to. The second check is the
  one that holds against DNS rebinding: there is no later lookup to swap the address.

This client is separate from the one that calls apps: an app's serve URL is configured
by its operator and is often on a private network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_CONNECT_TIMEOUT_S = 10.0
_READ_CHUNK = 64 * 1024
# NAT64's well-known prefix (RFC 6052): the last 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class OutboundError(Exception):
    """A request made for an app that gave no usable answer.

    ``retryable`` is False when the same request cannot succeed later: the destination or
    scheme is refused, the URL is invalid, the response is too large.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """Which addresses the server may connect to when an app chooses the URL.

    ``deny`` always wins, then ``allow``. With ``public_only`` (production) any other
    address must be global unicast: not loopback, private (RFC 1918, ULA), link-local,
    unspecified, multicast, shared (CGNAT) or reserved.
    """

    public_only: bool = False
    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    @property
    def restricts(self) -> bool:
        return self.public_only or bool(self.deny)

    def refusal(self, address: IPAddress) -> str | None:
        """Why the server must not connect to ``address`` ("a loopback address; ..."), or None."""
        forms = _forms(address)
        if any(form in network for form in forms for network in self.deny):
            return "in a network refused by --outbound-deny"
        if any(form in network for form in forms for network in self.allow):
            return None
        if self.public_only:
            for form in forms:
                kind = _non_public_kind(form)
                if kind is not None:
                    return (
                        f"{kind}; in production the server connects only to public "
                        "addresses unless --outbound-allow names the network"
                    )
        return None


def _forms(address: IPAddress) -> tuple[IPAddress, ...]:
    """The address, and the IPv4 address it leads to when it carries one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return (address.ipv4_mapped,)  # the very same host, through a dual-stack socket
        embedded = address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return (address, embedded)
    return (address,)


def _non_public_kind(address: IPAddress) -> str | None:
    # Named cases first for a clear message; is_global catches the rest (CGNAT, reserved,
    # documentation ranges). Multicast is tested on its own: some of it counts as global.
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


class _Refused(OSError):
    """Raised inside aiohttp's connector, which passes on only ``OSError`` unchanged."""


class _CheckedResolver(AbstractResolver):
    """Resolves a name, then refuses it if any of its addresses is off-limits.

    All or nothing: which address a connection ends up using should not decide whether
    an app reaches an internal one.
    """

    def __init__(self, policy: DestinationPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            reason = self._policy.refusal(ipaddress.ip_address(result["host"]))
            if reason is not None:
                raise _Refused(f"{host} resolves to {result['host']}, {reason}")
        return results

    async def close(self) -> None:
        await self._resolver.close()


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    status: int
    headers: tuple[tuple[str, str], ...]  # as received: lower-case names, repeats kept
    body: bytes


class OutboundClient:
    """One pooled aiohttp session for requests to URLs that apps choose."""

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        timeout_s: float,
        max_body_bytes: int = MAX_RESPONSE_BYTES,
        max_connections: int = 100,
    ) -> None:
        self.policy = policy
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._resolver: _CheckedResolver | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session belongs to the running event loop.
        if self._session is None or self._session.closed:
            guarded: dict[str, Any] = {}
            if self.policy.restricts:
                self._resolver = _CheckedResolver(self.policy)
                guarded = {"resolver": self._resolver, "socket_factory": self._checked_socket}
            connector = aiohttp.TCPConnector(limit=self._max_connections, **guarded)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout_s, sock_connect=min(_CONNECT_TIMEOUT_S, self.timeout_s)
                ),
                # Runs of different apps share this session: nothing one got may reach another.
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    def _checked_socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        reason = self.policy.refusal(ipaddress.ip_address(sockaddr[0]))
        if reason is not None:
            raise _Refused(f"{sockaddr[0]} is {reason}")
        return socket.socket(family=family, type=kind, proto=proto)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:  # a connector closes only a resolver it made itself
            await self._resolver.close()
            self._resolver = None

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None
    ) -> OutboundResponse:
        """Make one request; any HTTP status is an answer. Raises ``OutboundError``."""
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise OutboundError(
                f"only http and https URLs can be requested, not {url!r}", retryable=False
            )
        try:
            async with self._client().request(
                method, url, headers=headers, data=body, allow_redirects=False
            ) as response:
                received = await self._read_body(response)
                pairs = tuple((str(k).lower(), v) for k, v in response.headers.items())
                return OutboundResponse(response.status, pairs, received)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _Refused):
                raise OutboundError(
                    f"refused to connect: {exc.os_error}", retryable=False
                ) from None
            raise OutboundError(_describe(exc), retryable=True) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise OutboundError(f"timed out connecting for {url}", retryable=True) from exc
        except TimeoutError as exc:
            message = f"no complete answer from {url} within {self.timeout_s:g} s"
            raise OutboundError(message, retryable=True) from exc
        except (aiohttp.InvalidURL, ValueError) as exc:
            # aiohttp's own checks of the URL, method and headers: the same request fails again.
            raise OutboundError(
                f"cannot make this request: {_describe(exc)}", retryable=False
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise OutboundError(_describe(exc), retryable=True) from exc

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        body = bytearray()
        async for chunk in response.content.iter_chunked(_READ_CHUNK):
            body += chunk
            if len(body) > self.max_body_bytes:
                raise OutboundError(
                    f"the response body is larger than {self.max_body_bytes} bytes, "
                    "the most the server keeps",
                    retryable=False,
                )
        return bytes(body)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = [
    "MAX_RESPONSE_BYTES",
    "DestinationPolicy",
    "IPNetwork",
    "OutboundClient",
    "OutboundError",
    "OutboundResponse",
]
