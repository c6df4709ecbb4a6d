"""Wire formats shared by the SDK and the server. No I/O lives here."""

from . import events, headers, sessions
from .canonical import canonical_json, canonicalize_body, dumps, loads, reentry_body
from .duration import (
    DurationError,
    format_duration,
    parse_duration,
    parse_timestamp,
    resolve_until,
    to_iso,
)
from .hashing import RUN_COMPLETE_ID, StepIdCounter, hash_step_id
from .ids import encode_ulid, ids_from_seed, is_ulid, make_seed, new_ulid, ulid_ms
from .opcodes import GeneratorOp, Opcode, OpParseError, WireError, parse_opcode, parse_ops
from .signature import (
    SignatureError,
    bearer_matches,
    hash_event_key,
    hash_signing_key,
    sign,
    split_key,
    verify,
)

# The request version our SDK speaks, and the schema of the GET introspection body.
REQUEST_VERSION = 2
INTROSPECTION_SCHEMA = "2024-05-24"
DEFAULT_DEV_PORT = 8288
DEFAULT_SERVE_PATH = "/api/inngest"
DEV_EVENT_KEY = "NO_EVENT_KEY_SET"
DEFAULT_RETRIES = 4
MAX_RETRIES = 20

__all__ = [
    "DEFAULT_DEV_PORT",
    "DEFAULT_RETRIES",
    "DEFAULT_SERVE_PATH",
    "DEV_EVENT_KEY",
    "INTROSPECTION_SCHEMA",
    "MAX_RETRIES",
    "REQUEST_VERSION",
    "RUN_COMPLETE_ID",
    "DurationError",
    "GeneratorOp",
    "OpParseError",
    "Opcode",
    "SignatureError",
    "StepIdCounter",
    "WireError",
    "bearer_matches",
    "canonical_json",
    "canonicalize_body",
    "dumps",
    "encode_ulid",
    "events",
    "format_duration",
    "hash_event_key",
    "hash_signing_key",
    "hash_step_id",
    "headers",
    "ids_from_seed",
    "is_ulid",
    "loads",
    "make_seed",
    "new_ulid",
    "parse_duration",
    "parse_opcode",
    "parse_ops",
    "parse_timestamp",
    "reentry_body",
    "resolve_until",
    "sessions",
    "sign",
    "split_key",
    "to_iso",
    "ulid_ms",
    "verify",
]
