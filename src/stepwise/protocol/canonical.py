"""JSON encoding: compact JSON for bodies, RFC 8785 (JCS) canonical bytes for signing."""

from __future__ import annotations

from typing import Any

import orjson
import rfc8785


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (non-str dict keys are rejected like the wire would)."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical form: sorted keys, no spaces, ECMAScript number formatting."""
    return bytes(rfc8785.dumps(value))


def canonicalize_body(body: bytes) -> bytes:
    """Re-canonicalize a JSON body; bytes that are not JSON are returned unchanged."""
    if not body:
        return body
    try:
        return canonical_json(orjson.loads(body))
    except (orjson.JSONDecodeError, rfc8785.CanonicalizationError, TypeError, ValueError):
        return body


def reentry_body(body: bytes) -> bytes:
    """What a durable endpoint's re-entry is signed over. The server re-sends the client's
    original body, which the JS SDK parses as JSON and verifies in canonical form (a JSON
    string as the string itself); an empty body is signed as empty, anything else as sent."""
    if not body.strip():
        return b""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if isinstance(parsed, str):
        return parsed.encode()
    try:
        return canonical_json(parsed)
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return body
