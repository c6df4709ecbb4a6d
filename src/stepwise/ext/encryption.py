"""End-to-end encryption of run data: the server stores only ciphertext.

``EncryptionMiddleware`` encrypts, before they leave the app, every step output, the
function's output, and one chosen field of the events it sends and of invoke payloads
(``"encrypted"`` by default); it decrypts them on the way back in. Install with
``pip install 'stepwise[encryption]'`` (PyNaCl).

The envelope is the one of Inngest's official encryption middleware (PyPI
``inngest-encryption``, npm ``@inngest/middleware-encryption``), so an app of either SDK
reads what the other wrote given the same key::

    {"__ENCRYPTED__": true, "__STRATEGY__": "inngest/libsodium", "data": "<base64>"}

``data`` is standard base64 of ``nonce (24 bytes) || XSalsa20-Poly1305 ciphertext`` of the
value's JSON (libsodium's secret box). A text key is hashed to the box's 32 bytes with
BLAKE2b (libsodium's ``generichash``), as both official packages do. The Python package
marks envelopes ``inngest/libsodium`` and the JS one ``libsodium``: both are read, and
``strategy`` chooses which one to write.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Final

try:
    import nacl.encoding
    import nacl.exceptions
    import nacl.hash
    import nacl.secret
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "stepwise.ext.encryption needs PyNaCl: pip install 'stepwise[encryption]'"
    ) from exc

from ..errors import ConfigError, StepwiseError
from ..protocol import dumps, loads
from ..sdk.middleware import FunctionRun, Middleware, Output, RunInput, SendInput

ENCRYPTION_MARKER: Final = "__ENCRYPTED__"
STRATEGY_MARKER: Final = "__STRATEGY__"
PYTHON_STRATEGY: Final = "inngest/libsodium"
JS_STRATEGY: Final = "libsodium"
DEFAULT_EVENT_FIELD: Final = "encrypted"

Key = str | bytes


class DecryptionError(StepwiseError):
    """No configured key opens an envelope, or what it holds is not JSON."""


def secret_box_key(key: Key) -> bytes:
    """The secret box's 32-byte key.

    A ``str`` is hashed (BLAKE2b-256 of its UTF-8), as the official packages do with
    text keys. ``bytes`` are the key itself: 32 raw bytes, or 64 hex digits (how the
    official Python package reads a ``bytes`` key).
    """
    if isinstance(key, str):
        if not key.strip():
            raise ConfigError("an encryption key must not be empty")
        return nacl.hash.generichash(
            key.encode(),
            digest_size=nacl.secret.SecretBox.KEY_SIZE,
            encoder=nacl.encoding.RawEncoder,
        )
    if isinstance(key, bytes | bytearray):
        if len(key) == nacl.secret.SecretBox.KEY_SIZE:
            return bytes(key)
        if len(key) == 2 * nacl.secret.SecretBox.KEY_SIZE:
            try:
                return binascii.unhexlify(key)
            except binascii.Error:
                pass
    raise ConfigError("an encryption key is a str, or 32 bytes (raw or as 64 hex digits)")


def is_encrypted(value: object) -> bool:
    """True for an envelope of a strategy this module can open."""
    return (
        isinstance(value, dict)
        and value.get(ENCRYPTION_MARKER) is True
        and isinstance(value.get("data"), str)
        and value.get(STRATEGY_MARKER) in (PYTHON_STRATEGY, JS_STRATEGY)
    )


class Cipher:
    """Seals JSON values in envelopes with one key; opens them with it or a fallback."""

    def __init__(
        self, key: Key, fallback_keys: Sequence[Key] = (), *, strategy: str = PYTHON_STRATEGY
    ) -> None:
        if strategy not in (PYTHON_STRATEGY, JS_STRATEGY):
            raise ConfigError(f"strategy must be {PYTHON_STRATEGY!r} or {JS_STRATEGY!r}")
        self.strategy = strategy
        self._boxes = [nacl.secret.SecretBox(secret_box_key(k)) for k in (key, *fallback_keys)]

    def encrypt(self, value: Any) -> dict[str, Any]:
        if is_encrypted(value):
            return dict(value)
        sealed = self._boxes[0].encrypt(dumps(value))  # a random nonce, then the ciphertext
        return {
            ENCRYPTION_MARKER: True,
            STRATEGY_MARKER: self.strategy,
            "data": base64.b64encode(bytes(sealed)).decode("ascii"),
        }

    def decrypt(self, value: Any) -> Any:
        """The value an envelope holds; anything else is returned as it is."""
        if not is_encrypted(value):
            return value
        try:
            sealed = base64.b64decode(value["data"], validate=True)
        except binascii.Error as exc:
            raise DecryptionError("an encrypted value's data is not base64") from exc
        for box in self._boxes:
            try:
                plain = box.decrypt(sealed)
            except nacl.exceptions.CryptoError:
                continue
            try:
                return loads(plain)
            except ValueError as exc:
                raise DecryptionError("an encrypted value does not hold JSON") from exc
        raise DecryptionError("no encryption key (nor any fallback key) opens an encrypted value")


class EncryptionMiddleware(Middleware):
    """Encrypts what leaves the app, decrypts what comes back; see the module docstring.

    ``fallback_keys`` are tried, in order, on envelopes the key does not open: rotate by
    making the old key a fallback. ``decrypt_only`` stops encrypting (while another
    service has not got the key yet, say) but still decrypts.
    """

    name = "stepwise/encryption"

    def __init__(
        self,
        key: Key,
        *,
        fallback_keys: Sequence[Key] = (),
        event_field: str = DEFAULT_EVENT_FIELD,
        decrypt_only: bool = False,
        strategy: str = PYTHON_STRATEGY,
    ) -> None:
        if not event_field:
            raise ConfigError("event_field must not be empty")
        self.cipher = Cipher(key, fallback_keys, strategy=strategy)
        self.event_field = event_field
        self.decrypt_only = decrypt_only

    # -- in --------------------------------------------------------------------------

    def transform_input(self, run: FunctionRun, input: RunInput) -> None:
        for memo in input.steps.values():
            memo.data = self.cipher.decrypt(memo.data)
            if _looks_like_event(memo.data):  # a wait_for_event's event
                memo.data = {**memo.data, "data": self.decrypt_event_data(memo.data["data"])}
        decrypted = {id(e): self._decrypt_event(e) for e in (input.event, *input.events)}
        input.event = decrypted[id(input.event)]
        input.events = [decrypted[id(e)] for e in input.events]

    def _decrypt_event(self, event: Any) -> Any:
        data = self.decrypt_event_data(event.data)
        if data is event.data:
            return event
        return type(event)(
            name=event.name, data=data, id=event.id, ts=event.ts, user=event.user, v=event.v
        )

    def decrypt_event_data(self, data: Any) -> Any:
        """Event data with its encrypted parts opened: the whole of it (an invoke of the
        official Python SDK may encrypt it so), any field, and the original event inside
        an ``inngest/function.failed`` or ``finished`` event."""
        if not isinstance(data, dict):
            return data
        if is_encrypted(data):
            inner = self.cipher.decrypt(data)
            rest = {
                k: v
                for k, v in data.items()
                if k not in (ENCRYPTION_MARKER, STRATEGY_MARKER, "data")
            }
            return {**rest, **inner} if isinstance(inner, dict) else inner
        if not any(is_encrypted(v) or _looks_like_event(v) for v in data.values()):
            return data
        out = {k: self.cipher.decrypt(v) for k, v in data.items()}
        if _looks_like_event(out.get("event")):
            original = out["event"]
            out["event"] = {**original, "data": self.decrypt_event_data(original["data"])}
        return out

    # -- out -------------------------------------------------------------------------

    def transform_output(self, run: FunctionRun, output: Output) -> None:
        if self.decrypt_only:
            return
        if output.has_data and output.error is None:
            output.data = self.cipher.encrypt(output.data)
            return
        if output.step is not None and output.step.kind == "invoke" and output.opts is not None:
            payload = output.opts.get("payload")
            if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
                output.opts["payload"] = {**payload, "data": self._encrypt_field(payload["data"])}

    def transform_send_input(self, send: SendInput) -> None:
        if self.decrypt_only:
            return
        for event in send.events:
            data = event.get("data")
            if isinstance(data, dict):
                event["data"] = self._encrypt_field(data)

    def _encrypt_field(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.event_field not in data or is_encrypted(data[self.event_field]):
            return data
        return {**data, self.event_field: self.cipher.encrypt(data[self.event_field])}


def _looks_like_event(value: object) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and isinstance(value.get("data"), dict)
    )


__all__ = [
    "DEFAULT_EVENT_FIELD",
    "ENCRYPTION_MARKER",
    "JS_STRATEGY",
    "PYTHON_STRATEGY",
    "STRATEGY_MARKER",
    "Cipher",
    "DecryptionError",
    "EncryptionMiddleware",
    "is_encrypted",
    "secret_box_key",
]
