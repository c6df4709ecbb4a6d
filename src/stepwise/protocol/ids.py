"""ULIDs for runs and events, and event IDs derived from the ``x-inngest-event-id-seed`` header.

The seed is ``"<unix millis>,<base64 of 10 random bytes>"``. The i-th event of a request
(1-based) takes the seed's entropy with ``i`` added to its last four bytes (big-endian), so
a retried send produces the same IDs.
"""

from __future__ import annotations

import base64
import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_CROCKFORD)}


# Every 10-bit value as its two Crockford characters: a ULID is 13 lookups, not 26 shifts.
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]


def encode_ulid(ms: int, entropy: bytes) -> str:
    if len(entropy) != 10:
        raise ValueError("ULID entropy must be 10 bytes")
    value = (ms & ((1 << 48) - 1)) << 80 | int.from_bytes(entropy, "big")
    pairs = _PAIRS
    return "".join(pairs[(value >> shift) & 0x3FF] for shift in range(120, -10, -10))


def new_ulid(ms: int | None = None) -> str:
    return encode_ulid(int(time.time() * 1000) if ms is None else ms, os.urandom(10))


def ulid_ms(ulid: str) -> int:
    """The millisecond timestamp a ULID carries."""
    value = 0
    for c in ulid[:10].upper():
        value = value * 32 + _DECODE[c]
    return value


def is_ulid(text: str) -> bool:
    # ASCII first: some other letters upper-case into Crockford ones (U+017F -> "S").
    return (
        len(text) == 26
        and text.isascii()
        and all(c in _DECODE for c in text.upper())
        and text[0] in "01234567"
    )


def make_seed(ms: int | None = None) -> str:
    millis = int(time.time() * 1000) if ms is None else ms
    return f"{millis},{base64.b64encode(os.urandom(10)).decode('ascii')}"


def ids_from_seed(seed: str, count: int) -> list[str] | None:
    """Event IDs for ``count`` events from a seed header, or None if the seed is malformed."""
    try:
        ms_text, b64 = seed.split(",", 1)
        ms = int(ms_text)
        entropy = base64.b64decode(b64, validate=True)
    except (ValueError, TypeError):
        return None
    if len(entropy) != 10 or ms < 0:
        return None
    head, tail = entropy[:6], int.from_bytes(entropy[6:], "big")
    return [
        encode_ulid(ms, head + ((tail + i) & 0xFFFFFFFF).to_bytes(4, "big"))
        for i in range(1, count + 1)
    ]
