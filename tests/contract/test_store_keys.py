"""API keys: stored by hash, found by hash while unrevoked, revoked once, uses recorded."""

from __future__ import annotations

import pytest
from _clock import MINUTE, T0

from stepwise.server.keys import hash_api_key, new_api_key
from stepwise.server.store.base import Store
from stepwise.server.store.records import ApiKeyRecord


def _key(key_id: str, name: str, *, at: int = T0) -> tuple[str, ApiKeyRecord]:
    key = new_api_key()
    return key, ApiKeyRecord(id=key_id, name=name, key_hash=hash_api_key(key), created_at=at)


async def test_a_created_key_is_found_by_its_hash_and_listed(store: Store) -> None:
    key, record = _key("k1", "ci")
    _, other = _key("k2", "dashboard", at=T0 + 1)
    await store.create_api_key(other)
    await store.create_api_key(record)

    assert await store.find_api_key(hash_api_key(key)) == record
    assert await store.find_api_key(hash_api_key(new_api_key())) is None
    assert await store.list_api_keys() == [record, other]


async def test_a_revoked_key_is_no_longer_found_but_still_listed(store: Store) -> None:
    key, record = _key("k1", "ci")
    await store.create_api_key(record)

    assert await store.revoke_api_key("k1", T0 + MINUTE) is True
    assert await store.revoke_api_key("k1", T0 + 2 * MINUTE) is False
    assert await store.revoke_api_key("nope", T0) is False

    assert await store.find_api_key(hash_api_key(key)) is None
    (listed,) = await store.list_api_keys()
    assert listed.revoked_at == T0 + MINUTE


async def test_a_use_is_recorded_and_never_moves_back(store: Store) -> None:
    key, record = _key("k1", "ci")
    await store.create_api_key(record)

    await store.touch_api_key("k1", T0 + 2 * MINUTE)
    await store.touch_api_key("k1", T0 + MINUTE)  # another node, reporting late

    found = await store.find_api_key(hash_api_key(key))
    assert found is not None and found.last_used_at == T0 + 2 * MINUTE


async def test_two_keys_with_one_hash_cannot_both_be_stored(store: Store) -> None:
    key, record = _key("k1", "ci")
    await store.create_api_key(record)
    clash = ApiKeyRecord(id="k2", name="copy", key_hash=hash_api_key(key), created_at=T0)

    # Each driver raises its own integrity error; both name the unique index.
    with pytest.raises(Exception, match=r"(?i)unique"):
        await store.create_api_key(clash)
    assert [k.id for k in await store.list_api_keys()] == ["k1"]
