"""API keys for the REST API: their format and the hash the store keeps of them.

A key is ``sw_key_`` followed by 256 random bits (URL-safe base64, 43 characters): the
prefix lets people and secret scanners recognise one, and tells the server a Bearer
token is worth looking up. A key that random needs no salt nor slow hash: SHA-256 of it
cannot be reversed or guessed, and hashing it is cheap enough for every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "sw_key_"
API_KEY_BYTES = 32
# base64url of 32 bytes without padding.
_BODY_LENGTH = 43
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def new_api_key() -> str:
    """A fresh key, shown once to whoever creates it and never stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_BYTES)


def looks_like_api_key(token: str) -> bool:
    """Whether ``token`` has the shape of a key (so it is worth a look-up in the store)."""
    body = token[len(API_KEY_PREFIX) :]
    return (
        token.startswith(API_KEY_PREFIX)
        and len(body) == _BODY_LENGTH
        and _ALPHABET.issuperset(body)
    )


def hash_api_key(key: str) -> str:
    """What the store keeps of a key, and what a presented key is looked up by (hex)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_key_matches(key: str, key_hash: str) -> bool:
    """Whether ``key`` hashes to ``key_hash``, compared in constant time."""
    return hmac.compare_digest(hash_api_key(key).encode(), key_hash.encode())
