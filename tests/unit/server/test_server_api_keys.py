"""API keys' format and hash, and the per-client limit on failed authentications."""

from __future__ import annotations

import hashlib

import pytest

from stepwise.server.api import authenticator
from stepwise.server.api.authenticator import AuthFailures
from stepwise.server.keys import (
    API_KEY_PREFIX,
    api_key_matches,
    hash_api_key,
    looks_like_api_key,
    new_api_key,
)


def test_a_key_has_the_prefix_and_256_random_bits() -> None:
    keys = {new_api_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert key.startswith(API_KEY_PREFIX)
        assert len(key) == len(API_KEY_PREFIX) + 43  # base64url of 32 bytes
        assert looks_like_api_key(key)


def test_the_stored_hash_is_the_sha256_of_the_whole_key() -> None:
    key = new_api_key()
    assert hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert api_key_matches(key, hash_api_key(key))
    assert not api_key_matches(new_api_key(), hash_api_key(key))
    assert not api_key_matches(key, key)  # the key is not its own hash


def test_only_tokens_shaped_like_keys_are_worth_a_look_up() -> None:
    key = new_api_key()
    assert not looks_like_api_key(key[:-1])
    assert not looks_like_api_key(key + "A")
    assert not looks_like_api_key(key[: len(API_KEY_PREFIX)] + "!" * 43)
    assert not looks_like_api_key("signkey-prod-" + "ab" * 32)
    assert not looks_like_api_key(API_KEY_PREFIX.upper() + key[len(API_KEY_PREFIX) :])


def test_ten_failures_in_a_minute_lock_the_client_out() -> None:
    failures = AuthFailures(limit=10, period_ms=60_000)
    for i in range(10):
        assert failures.retry_after_ms("10.0.0.1", 1000 + i) == 0
        failures.record("10.0.0.1", 1000 + i)

    wait = failures.retry_after_ms("10.0.0.1", 1010)
    assert 0 < wait <= 60_000
    assert failures.retry_after_ms("10.0.0.2", 1010) == 0  # another client is not affected
    # Trying while locked out does not lengthen the wait.
    failures.record("10.0.0.1", 1010)
    assert failures.retry_after_ms("10.0.0.1", 1010) == wait
    assert failures.retry_after_ms("10.0.0.1", 1010 + wait) == 0


def test_failures_spread_below_the_rate_never_lock_out() -> None:
    failures = AuthFailures(limit=10, period_ms=60_000)
    for i in range(100):
        now = i * 6_000  # one every six seconds: exactly ten a minute
        assert failures.retry_after_ms("10.0.0.1", now) == 0
        failures.record("10.0.0.1", now)


def test_clients_whose_failures_expired_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authenticator, "_PRUNE_AT", 3)
    failures = AuthFailures(limit=10, period_ms=60_000)
    for client in ("a", "b", "c"):
        failures.record(client, 0)  # each TAT is 6 s on
    failures.record("d", 10_000)  # a, b and c are clear by now

    assert set(failures._tats) == {"d"}
    assert failures.retry_after_ms("a", 10_000) == 0
