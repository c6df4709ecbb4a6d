"""Request signing (X-Inngest-Signature) and signing-key hashing for Bearer auth.

Signature: ``t=<unix seconds>&s=<hex HMAC-SHA256>``, keyed with the signing key's
hex text (``signkey-<env>-`` prefix removed, not hex-decoded), over ``body || str(t)``.
Bearer token: the prefix kept, the hex part replaced with SHA-256 of the hex-decoded key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from urllib.parse import parse_qs

from .canonical import canonicalize_body

_PREFIX = re.compile(r"^signkey-\w+?-")

# Both SDKs reject timestamps further than this from now (seconds).
MAX_SIGNATURE_SKEW = 5 * 60


class SignatureError(ValueError):
    """A signature header is missing, malformed, stale or does not match."""


def split_key(key: str) -> tuple[str, str]:
    """Split ``signkey-prod-abc`` into ``("signkey-prod-", "abc")``; a bare key has no prefix."""
    match = _PREFIX.match(key)
    if match is None:
        return "", key
    return match.group(0), key[match.end() :]


def sign(body: bytes, signing_key: str, ts: int | None = None) -> str:
    """The ``X-Inngest-Signature`` value for ``body`` (sign exactly the bytes you send)."""
    t = int(time.time()) if ts is None else ts
    _, secret = split_key(signing_key)
    mac = hmac.new(secret.encode("utf-8"), body + str(t).encode("ascii"), hashlib.sha256)
    return f"t={t}&s={mac.hexdigest()}"


def parse_signature(header: str) -> tuple[int, str]:
    fields = parse_qs(header, keep_blank_values=True)
    try:
        ts = int(fields["t"][0])
        sig = fields["s"][0]
    except (KeyError, IndexError, ValueError) as exc:
        raise SignatureError("malformed signature header") from exc
    if not sig or not sig.isascii():
        raise SignatureError("malformed signature header")
    return ts, sig


def verify(
    body: bytes,
    header: str | None,
    keys: Iterable[str | None],
    *,
    canonicalize: bool = True,
    max_skew: int | None = MAX_SIGNATURE_SKEW,
    now: float | None = None,
) -> str:
    """Check ``header`` against each key in turn; return the key that matched.

    ``canonicalize`` re-canonicalizes a JSON body first (how SDKs verify requests);
    responses are signed over their raw bytes, so callers verifying a response pass False.
    """
    if not header:
        raise SignatureError("missing signature")
    ts, sig = parse_signature(header)
    current = time.time() if now is None else now
    if max_skew is not None and abs(current - ts) > max_skew:
        raise SignatureError("signature timestamp is too old or in the future")
    message = canonicalize_body(body) if canonicalize else body
    for key in keys:
        if not key:
            continue
        expected = sign(message, key, ts).split("&s=", 1)[1]
        if hmac.compare_digest(expected, sig):
            return key
    raise SignatureError("signature does not match")


def hash_signing_key(signing_key: str) -> str:
    """The Bearer token form of a signing key: ``signkey-<env>-<sha256(hexdecode(key))>``."""
    prefix, secret = split_key(signing_key)
    try:
        raw = bytes.fromhex(secret)
    except ValueError:
        raw = secret.encode("utf-8")
    return prefix + hashlib.sha256(raw).hexdigest()


def bearer_matches(token: str, signing_key: str) -> bool:
    """True if a Bearer ``token`` proves knowledge of ``signing_key``.

    Accepts the key itself or its hash, with or without the ``signkey-*-`` prefix
    (the Python SDK sends the bare hash).
    """
    _, got = split_key(token.strip())
    _, secret = split_key(signing_key)
    _, hashed = split_key(hash_signing_key(signing_key))
    token_bytes = got.encode("utf-8")  # compare bytes: str compare_digest rejects non-ASCII
    return hmac.compare_digest(token_bytes, secret.encode("utf-8")) or hmac.compare_digest(
        token_bytes, hashed.encode("utf-8")
    )


def hash_event_key(event_key: str) -> str:
    return hashlib.sha256(event_key.encode("utf-8")).hexdigest()
