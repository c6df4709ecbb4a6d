"""Request signatures and Bearer key hashing (reference §6)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from stepwise.protocol import (
    SignatureError,
    bearer_matches,
    hash_event_key,
    hash_signing_key,
    sign,
    split_key,
    verify,
)
from stepwise.protocol.signature import MAX_SIGNATURE_SKEW, parse_signature

KEY = "signkey-test-12345678"
BODY = b'{"a":1}'
TS = 1700000000
SIG = "67a82077baa52522b1f612a154a25275c00a0338efc32be5ee396bd2391ba5e0"
HEADER = f"t={TS}&s={SIG}"

PROD_KEY = "signkey-prod-12345678"
PROD_HASH = "b2ed992186a5cb19f6668aade821f502c1d00970dfd0e35128d51bac4649916c"


# --- split_key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("signkey-prod-abc", ("signkey-prod-", "abc")),
        ("signkey-test-12345678", ("signkey-test-", "12345678")),
        ("signkey-branch-00ff", ("signkey-branch-", "00ff")),
        ("deadbeef", ("", "deadbeef")),
        ("", ("", "")),
    ],
)
def test_split_key(key: str, expected: tuple[str, str]) -> None:
    assert split_key(key) == expected


# --- sign ------------------------------------------------------------------------


def test_sign_reference_vector() -> None:
    assert sign(BODY, KEY, TS) == HEADER


def test_sign_uses_key_text_without_prefix() -> None:
    # HMAC keyed with the hex *text* (not hex-decoded), message = body || decimal(t).
    expected = hmac.new(b"12345678", BODY + b"1700000000", hashlib.sha256).hexdigest()
    assert expected == SIG
    assert sign(BODY, "12345678", TS) == HEADER


def test_sign_defaults_to_current_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stepwise.protocol.signature.time.time", lambda: TS + 0.9)
    assert sign(BODY, KEY) == HEADER


# --- verify ----------------------------------------------------------------------


def test_verify_reference_vector_returns_matching_key() -> None:
    assert verify(BODY, HEADER, [KEY], now=TS) == KEY


def test_verify_canonicalizes_reordered_body() -> None:
    signed = sign(b'{"a":1,"b":[1,2]}', KEY, TS)
    body = b'{ "b" : [1, 2.0],\n  "a": 1.0 }'
    assert verify(body, signed, [KEY], now=TS) == KEY


def test_verify_whitespace_body_matches_reference_vector() -> None:
    assert verify(b'{ "a" : 1 }\n', HEADER, [KEY], now=TS) == KEY


def test_verify_without_canonicalization_needs_exact_bytes() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(b'{ "a": 1 }', HEADER, [KEY], canonicalize=False, now=TS)
    assert verify(BODY, HEADER, [KEY], canonicalize=False, now=TS) == KEY


def test_verify_non_json_body_is_signed_raw() -> None:
    body = b"not json at all"
    assert verify(body, sign(body, KEY, TS), [KEY], now=TS) == KEY


def test_verify_tries_fallback_key() -> None:
    fallback = "signkey-test-abcdef00"
    header = sign(BODY, fallback, TS)
    assert verify(BODY, header, [KEY, fallback], now=TS) == fallback


def test_verify_skips_missing_keys() -> None:
    assert verify(BODY, HEADER, [None, "", KEY], now=TS) == KEY


def test_verify_wrong_key_rejected() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(BODY, HEADER, ["signkey-test-87654321"], now=TS)


def test_verify_no_keys_rejected() -> None:
    with pytest.raises(SignatureError):
        verify(BODY, HEADER, [None], now=TS)


def test_verify_tampered_body_rejected() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify(b'{"a":2}', HEADER, [KEY], now=TS)


def test_verify_accepts_skew_up_to_limit() -> None:
    assert verify(BODY, HEADER, [KEY], now=TS + MAX_SIGNATURE_SKEW) == KEY
    assert verify(BODY, HEADER, [KEY], now=TS - MAX_SIGNATURE_SKEW) == KEY


@pytest.mark.parametrize("delta", [MAX_SIGNATURE_SKEW + 1, -(MAX_SIGNATURE_SKEW + 1), 86400])
def test_verify_stale_or_future_timestamp_rejected(delta: int) -> None:
    with pytest.raises(SignatureError, match="too old"):
        verify(BODY, HEADER, [KEY], now=TS + delta)


def test_verify_skew_check_can_be_disabled() -> None:
    assert verify(BODY, HEADER, [KEY], max_skew=None, now=TS + 10**6) == KEY


def test_verify_uses_current_time_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stepwise.protocol.signature.time.time", lambda: TS + 10)
    assert verify(BODY, HEADER, [KEY]) == KEY
    monkeypatch.setattr("stepwise.protocol.signature.time.time", lambda: TS + 3600)
    with pytest.raises(SignatureError):
        verify(BODY, HEADER, [KEY])


@pytest.mark.parametrize("header", [None, ""])
def test_verify_missing_header_rejected(header: str | None) -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify(BODY, header, [KEY], now=TS)


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"s={SIG}",
        f"t={TS}",
        f"t={TS}&s=",
        f"t=abc&s={SIG}",
        f"t=1.5&s={SIG}",
        "t=&s=",
        f"t={TS}&s=%C3%A9",
        f"t={TS}&s=\u00e9\u00e9",
    ],
)
def test_verify_malformed_header_rejected(header: str) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        verify(BODY, header, [KEY], now=TS)


def test_parse_signature_field_order_irrelevant() -> None:
    assert parse_signature(f"s={SIG}&t={TS}") == (TS, SIG)


def test_verify_uppercase_or_truncated_signature_rejected() -> None:
    for sig in (SIG.upper(), SIG[:-2], SIG + "00"):
        with pytest.raises(SignatureError, match="does not match"):
            verify(BODY, f"t={TS}&s={sig}", [KEY], now=TS)


# --- Bearer key hashing ------------------------------------------------------------


def test_hash_signing_key_reference_vector() -> None:
    assert hash_signing_key(PROD_KEY) == f"signkey-prod-{PROD_HASH}"


def test_hash_signing_key_hashes_hex_decoded_bytes() -> None:
    assert hashlib.sha256(bytes.fromhex("12345678")).hexdigest() == PROD_HASH
    assert hash_signing_key("12345678") == PROD_HASH


def test_hash_signing_key_non_hex_falls_back_to_text() -> None:
    assert hash_signing_key("signkey-dev-xyz") == (
        "signkey-dev-" + hashlib.sha256(b"xyz").hexdigest()
    )


@pytest.mark.parametrize(
    "token",
    [
        f"signkey-prod-{PROD_HASH}",  # JS: prefixed hash
        PROD_HASH,  # PY: bare hash
        f"signkey-test-{PROD_HASH}",  # any prefix is stripped
        PROD_KEY,  # the raw key itself
        "12345678",  # raw key without prefix
        f"  {PROD_HASH}  ",  # surrounding whitespace
    ],
)
def test_bearer_matches_accepts(token: str) -> None:
    assert bearer_matches(token, PROD_KEY) is True


@pytest.mark.parametrize(
    "token",
    [
        "",
        "undefined",  # JS without a key sends "Bearer undefined"
        "signkey-prod-87654321",
        PROD_HASH[:-1],
        PROD_HASH.upper(),
        hashlib.sha256(b"12345678").hexdigest(),  # hash of the text, not the decoded bytes
        "\u00e9\u00e9",  # non-ASCII must be a plain mismatch, not an error
    ],
)
def test_bearer_matches_rejects(token: str) -> None:
    assert bearer_matches(token, PROD_KEY) is False


def test_bearer_matches_with_bare_configured_key() -> None:
    assert bearer_matches(f"signkey-prod-{PROD_HASH}", "12345678") is True
    assert bearer_matches("signkey-prod-00", "12345678") is False


def test_hash_event_key_is_sha256_of_raw_text() -> None:
    assert hash_event_key("my-event-key") == hashlib.sha256(b"my-event-key").hexdigest()
