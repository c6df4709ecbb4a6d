"""Which destinations the outbound client may reach, and what it refuses before connecting."""

from __future__ import annotations

import ipaddress

import pytest

from stepwise.server.engine.outbound import DestinationPolicy, OutboundClient, OutboundError

PRODUCTION = DestinationPolicy(public_only=True)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: the same host through a v6 socket
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),  # ULA
        ("169.254.169.254", "link-local"),  # cloud metadata services live here
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),  # counted as global by ipaddress, refused all the same
        ("ff0e::1", "multicast"),
        ("100.64.0.1", "not a public address"),  # shared address space (CGNAT)
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
    ],
)
def test_production_refuses_non_public_addresses(address: str, kind: str) -> None:
    reason = PRODUCTION.refusal(ipaddress.ip_address(address))
    assert reason is not None and kind in reason and "--outbound-allow" in reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_production_reaches_public_addresses(address: str) -> None:
    assert PRODUCTION.refusal(ipaddress.ip_address(address)) is None


def test_dev_reaches_everything_not_denied() -> None:
    dev = DestinationPolicy(deny=(ipaddress.ip_network("169.254.0.0/16"),))
    assert dev.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert dev.refusal(ipaddress.ip_address("10.0.0.1")) is None
    assert "--outbound-deny" in (dev.refusal(ipaddress.ip_address("169.254.169.254")) or "")
    assert not DestinationPolicy().restricts and dev.restricts


def test_allow_opens_a_network_and_deny_wins_over_it() -> None:
    policy = DestinationPolicy(
        public_only=True,
        allow=(ipaddress.ip_network("10.0.0.0/8"),),
        deny=(ipaddress.ip_network("10.0.0.5/32"), ipaddress.ip_network("8.8.8.0/24")),
    )
    assert policy.refusal(ipaddress.ip_address("10.9.9.9")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:10.9.9.9")) is None
    assert "--outbound-deny" in (policy.refusal(ipaddress.ip_address("10.0.0.5")) or "")
    assert "--outbound-deny" in (policy.refusal(ipaddress.ip_address("::ffff:10.0.0.5")) or "")
    assert "--outbound-deny" in (policy.refusal(ipaddress.ip_address("8.8.8.8")) or "")
    assert "private" in (policy.refusal(ipaddress.ip_address("192.168.0.1")) or "")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x/", "x"])
async def test_only_http_and_https_are_requested(url: str) -> None:
    client = OutboundClient(DestinationPolicy(), timeout_s=5)
    try:
        with pytest.raises(OutboundError, match="only http and https") as caught:
            await client.request("GET", url, headers={}, body=None)
        assert not caught.value.retryable
    finally:
        await client.close()
