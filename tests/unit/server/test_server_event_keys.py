"""Event keys are compared in constant time, against every configured key."""

from __future__ import annotations

import hmac

import pytest

from stepwise.server.api.events import event_key_accepted

KEYS = ("first-key", "second-key", "third-key")


@pytest.mark.parametrize(
    ("key", "accepted"),
    [
        ("first-key", True),
        ("third-key", True),
        ("first-ke", False),
        ("first-key-", False),
        ("", False),
        ("ключ", False),  # compare_digest on str would raise on non-ASCII
        ("\udcff", False),  # an undecodable byte that survived as a surrogate
    ],
)
def test_a_key_is_accepted_only_if_configured(key: str, accepted: bool) -> None:
    assert event_key_accepted(key, KEYS) is accepted


@pytest.mark.parametrize("key", ["first-key", "nope"])
def test_every_configured_key_is_compared_with_compare_digest(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)

    event_key_accepted(key, KEYS)

    # A match on the first key does not end the loop: the time is the same either way.
    assert compared == [(key.encode(), k.encode()) for k in KEYS]
