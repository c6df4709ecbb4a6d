"""ULIDs and event IDs derived from the x-inngest-event-id-seed header (reference §7.1, §12.20)."""

from __future__ import annotations

import base64

import pytest

from stepwise.protocol import ids_from_seed, is_ulid, make_seed, new_ulid, ulid_ms
from stepwise.protocol.ids import encode_ulid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ENTROPY = bytes(range(1, 11))
MS = 1_700_000_000_123


def decode(ulid: str) -> tuple[int, bytes]:
    """Independent ULID decoder: (millis, 10 entropy bytes)."""
    value = 0
    for c in ulid:
        value = value * 32 + CROCKFORD.index(c)
    return value >> 80, (value & ((1 << 80) - 1)).to_bytes(10, "big")


def seed_for(ms: int, entropy: bytes) -> str:
    return f"{ms},{base64.b64encode(entropy).decode('ascii')}"


# --- encode / decode -----------------------------------------------------------------


def test_encode_ulid_round_trip() -> None:
    ulid = encode_ulid(MS, ENTROPY)
    assert len(ulid) == 26
    assert is_ulid(ulid)
    assert ulid_ms(ulid) == MS
    assert decode(ulid) == (MS, ENTROPY)


@pytest.mark.parametrize(
    ("prefix", "ms"),
    [
        ("0000000000", 0),
        ("0000000001", 1),
        ("000000000Z", 31),
        ("0000000010", 32),
        ("00000000ZZ", 1023),
        ("7ZZZZZZZZZ", (1 << 48) - 1),
    ],
)
def test_ulid_ms_hand_vectors(prefix: str, ms: int) -> None:
    ulid = prefix + "ZZZZZZZZZZZZZZZZ"  # the entropy part does not affect the time
    assert ulid_ms(ulid) == ms
    assert ulid_ms(ulid.lower()) == ms
    assert decode(ulid)[0] == ms


def test_encode_ulid_extremes() -> None:
    assert encode_ulid(0, bytes(10)) == "0" * 26
    top = encode_ulid((1 << 48) - 1, b"\xff" * 10)
    assert top == "7" + "Z" * 25
    assert ulid_ms(top) == (1 << 48) - 1


def test_encode_ulid_sorts_by_time() -> None:
    assert encode_ulid(MS, b"\xff" * 10) < encode_ulid(MS + 1, bytes(10))


@pytest.mark.parametrize("entropy", [b"", bytes(9), bytes(11)])
def test_encode_ulid_requires_ten_bytes(entropy: bytes) -> None:
    with pytest.raises(ValueError):
        encode_ulid(MS, entropy)


def test_new_ulid_uses_given_or_current_time() -> None:
    ulid = new_ulid(MS)
    assert is_ulid(ulid)
    assert ulid_ms(ulid) == MS
    assert new_ulid(MS) != ulid  # random entropy


def test_new_ulid_default_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stepwise.protocol.ids.time.time", lambda: MS / 1000)
    assert abs(ulid_ms(new_ulid()) - MS) <= 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("01ARZ3NDEKTSV4RRFFQ69G5FAV", True),
        ("01arz3ndektsv4rrffq69g5fav", True),
        ("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", True),
        ("8ZZZZZZZZZZZZZZZZZZZZZZZZZ", False),  # overflows 128 bits
        ("01ARZ3NDEKTSV4RRFFQ69G5FA", False),  # 25 chars
        ("01ARZ3NDEKTSV4RRFFQ69G5FAVX", False),  # 27 chars
        ("01ARZ3NDEKTSV4RRFFQ69G5FAU", False),  # U is not Crockford
        ("", False),
    ],
)
def test_is_ulid(text: str, expected: bool) -> None:
    assert is_ulid(text) is expected


# --- seeds ---------------------------------------------------------------------------


def test_make_seed_shape() -> None:
    seed = make_seed(MS)
    ms_text, b64 = seed.split(",")
    assert int(ms_text) == MS
    assert len(base64.b64decode(b64, validate=True)) == 10
    assert make_seed(MS) != seed


def test_make_seed_round_trips_through_ids_from_seed() -> None:
    ids = ids_from_seed(make_seed(MS), 3)
    assert ids is not None
    assert [ulid_ms(i) for i in ids] == [MS, MS, MS]


def test_ids_from_seed_is_deterministic() -> None:
    seed = seed_for(MS, ENTROPY)
    first = ids_from_seed(seed, 5)
    assert first is not None
    assert first == ids_from_seed(seed, 5)
    assert len(set(first)) == 5
    assert all(is_ulid(i) for i in first)
    # A shorter request is a prefix of a longer one.
    assert ids_from_seed(seed, 2) == first[:2]


def test_ids_from_seed_adds_one_based_index_to_last_four_bytes() -> None:
    ids = ids_from_seed(seed_for(MS, ENTROPY), 3)
    assert ids is not None
    tail = int.from_bytes(ENTROPY[6:], "big")
    for i, ulid in enumerate(ids, start=1):
        ms, entropy = decode(ulid)
        assert ms == MS
        assert entropy[:6] == ENTROPY[:6]
        assert int.from_bytes(entropy[6:], "big") == tail + i
    # The first event does NOT reuse the seed's entropy unchanged.
    assert ids[0] != encode_ulid(MS, ENTROPY)


def test_ids_from_seed_wraps_the_uint32() -> None:
    entropy = b"\x00" * 5 + b"\x01" + b"\xff\xff\xff\xfe"
    ids = ids_from_seed(seed_for(MS, entropy), 3)
    assert ids is not None
    tails = [decode(u)[1] for u in ids]
    assert tails[0] == b"\x00" * 5 + b"\x01" + b"\xff\xff\xff\xff"
    # Overflow wraps inside the last four bytes and never carries into the head.
    assert tails[1] == b"\x00" * 5 + b"\x01" + b"\x00\x00\x00\x00"
    assert tails[2] == b"\x00" * 5 + b"\x01" + b"\x00\x00\x00\x01"


def test_ids_from_seed_zero_count() -> None:
    assert ids_from_seed(seed_for(MS, ENTROPY), 0) == []


@pytest.mark.parametrize(
    "seed",
    [
        "",
        "garbage",
        f"{MS}",
        f"{MS},",
        f"abc,{base64.b64encode(ENTROPY).decode()}",
        f"-1,{base64.b64encode(ENTROPY).decode()}",
        f"{MS},not*base64!",
        f"{MS},{base64.b64encode(bytes(9)).decode()}",
        f"{MS},{base64.b64encode(bytes(11)).decode()}",
        f",{base64.b64encode(ENTROPY).decode()}",
        f"1.5,{base64.b64encode(ENTROPY).decode()}",
    ],
)
def test_ids_from_seed_malformed_returns_none(seed: str) -> None:
    assert ids_from_seed(seed, 1) is None
