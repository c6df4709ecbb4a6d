"""The AI gateway: the provider requests the server makes for ``step.ai.infer``.

An SDK reports an ``AIGateway`` op whose ``opts`` are the whole request, built by its model
adapter: ``url``, ``headers``, ``auth_key``, ``format`` (``openai-chat``, ``anthropic``,
``gemini``, ...) and ``body``. The server POSTs the body as JSON through the same guarded
client as ``step.fetch`` (no redirects followed, a body cap, a timeout, the destination
policy), and the step's result is what the provider answered:

* a 2xx JSON answer: ``{"data": <the provider's JSON>}``, which both official SDKs return
  from ``step.ai.infer`` as it is;
* anything else: ``{"error": {"name": "AIGatewayError", "message", "stack", "status",
  "data"}}`` (``stack`` is the body as text: the SDKs read ``stack`` as a string; ``data``
  is the body as JSON when it is JSON); the SDKs raise it where the step is awaited.

A 408, 429 or 5xx answer, or no answer (unreachable, timed out), may pass: it is retried
by the step's retry policy, a ``Retry-After`` the provider sent deciding when. Any other
answer would come back the same, so it settles the step at once.

The key must never reach the run's history: ``redacted`` is the request as the history
keeps it, with the key, credential-like headers and query parameters, and any copy of
the key elsewhere in the URL or headers replaced. Only the job that makes the request
holds the key, and a job row is deleted when its outcome commits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pydantic

from ... import protocol
from .backoff import parse_retry_after
from .outbound import OutboundError, OutboundResponse

ERROR_NAME = "AIGatewayError"
REDACTED = "[redacted]"

# Statuses a later attempt may get past: a timeout, a rate limit, a provider's own failure.
_RETRYABLE_STATUSES = frozenset({408, 429})
# Header and query names that carry credentials, matched on their lower-case form.
_SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "apikey",
        "x-goog-api-key",
        "cookie",
        "key",
        "api_key",
        "access_token",
        "token",
        "sig",
        "signature",
    }
)
_SECRET_PARTS = ("key", "token", "secret", "auth", "password", "credential", "signature")
# What a long error body is cut to in the error's message (the full body is kept).
_MESSAGE_BODY_CHARS = 300


class InvalidOptions(ValueError):
    """An ``AIGateway`` op whose ``opts`` are not a request the server can make."""


class InferOptions(pydantic.BaseModel):
    """The ``opts`` of an ``AIGateway`` op, as both official SDKs send them."""

    model_config = pydantic.ConfigDict(extra="ignore")

    type: str = "step.ai.infer"
    url: str
    headers: dict[str, str] | None = None
    auth_key: str = ""
    format: str = "openai-chat"
    body: dict[str, Any]


def parse_options(opts: object) -> InferOptions:
    """The op's options, checked; raises ``InvalidOptions`` with a message free of values."""
    if not isinstance(opts, dict):
        raise InvalidOptions("the AIGateway op carries no options")
    try:
        options = InferOptions.model_validate(opts)
    except pydantic.ValidationError as exc:
        # Field names and reasons only: the values may be keys.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'opts'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise InvalidOptions(f"invalid AIGateway options: {problems}") from None
    if urlsplit(options.url).scheme.lower() not in ("http", "https"):
        raise InvalidOptions("an AIGateway request needs an http(s) URL")
    return options


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    url: str
    headers: dict[str, str]
    body: bytes


def build_request(options: InferOptions) -> ProviderRequest:
    """The HTTP request to make: the adapter's URL and headers, the key where the format
    puts it (unless the adapter put it there already), and the body as JSON."""
    headers = {"content-type": "application/json"}
    for name, value in (options.headers or {}).items():
        headers[name.lower()] = value
    url = options.url
    key = options.auth_key
    if key:
        kind = options.format.lower()
        if kind == "anthropic":
            headers.setdefault("x-api-key", key)
        elif kind == "gemini":
            url = _with_query_key(url, key)
        elif kind == "azure-openai":
            headers.setdefault("api-key", key)
        elif kind == "bedrock":
            headers.setdefault("authorization", key)
        else:  # openai-chat, openai-responses, grok and other OpenAI-compatible APIs
            headers.setdefault("authorization", f"Bearer {key}")
    return ProviderRequest(url, headers, protocol.dumps(options.body))


def _with_query_key(url: str, key: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "key" for name, _ in query):
        return url
    return urlunsplit(parts._replace(query=urlencode([*query, ("key", key)])))


# ---- what the history keeps ----------------------------------------------------------------


def redacted(options: InferOptions) -> dict[str, Any]:
    """The request as the run's history keeps it: everything but its secrets."""
    secrets = _secrets(options)
    return {
        "url": redact_url(options.url, secrets),
        "format": options.format,
        "headers": {
            name: _redact_header(name, value, secrets)
            for name, value in (options.headers or {}).items()
        },
        "auth_key": REDACTED if options.auth_key else "",
        "body": options.body,
    }


def _secrets(options: InferOptions) -> tuple[str, ...]:
    """Values to scrub wherever they appear: the key, and the credentials in headers."""
    found = [options.auth_key]
    for name, value in (options.headers or {}).items():
        if _is_secret_name(name):
            found.append(value)
            # "Bearer sk-..." : the token alone may appear elsewhere too.
            found.extend(value.split()[1:])
    # Longest first, so a secret containing another is replaced whole.
    return tuple(sorted({s for s in found if len(s) >= 4}, key=len, reverse=True))


def _is_secret_name(name: str) -> bool:
    lower = name.lower()
    return lower in _SECRET_NAMES or any(part in lower for part in _SECRET_PARTS)


def _redact_header(name: str, value: str, secrets: Iterable[str]) -> str:
    if _is_secret_name(name):
        return REDACTED
    return scrub(value, secrets)


def redact_url(url: str, secrets: Iterable[str]) -> str:
    """``url`` with its user info, credential-like query parameters and any secret removed."""
    secrets = tuple(secrets)
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub(url, secrets)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = [
        (name, REDACTED if _is_secret_name(name) else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    rebuilt = urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="[]")))
    return scrub(rebuilt, secrets)


# Argument names of a wrapped call whose values are credentials (exact names: a broader
# match would hide ordinary parameters such as ``max_tokens``).
_SECRET_ARGUMENTS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "auth_key",
        "authorization",
        "access_token",
        "client_secret",
        "secret",
        "password",
    }
)


def redact_input(value: Any) -> Any:
    """The input of a ``step.ai.wrap`` call, with the values of credential arguments hidden."""
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in _SECRET_ARGUMENTS else redact_input(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_input(v) for v in value]
    return value


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


# ---- what the provider's answer makes of the step -------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt ends in: the step's memo, or an error that a retry may get past."""

    memo: dict[str, Any]
    retryable: bool = False
    retry_after_ms: int | None = None  # an absolute time, from the provider's Retry-After

    @property
    def failed(self) -> bool:
        return "error" in self.memo


def answer_of(response: OutboundResponse, now: int) -> Answer:
    """The step's result from the provider's response."""
    text = response.body.decode("utf-8", "replace")
    parsed = _json_or_none(response.body)
    status = response.status
    if 200 <= status < 300:
        if parsed is not _NOT_JSON:
            return Answer({"data": parsed})
        return Answer(
            _error(
                f"the provider answered HTTP {status} with a body that is not JSON",
                status,
                text,
                text,
            )
        )
    retryable = status in _RETRYABLE_STATUSES or status >= 500
    retry_after = None
    if retryable:
        value = next((v for k, v in response.headers if k == "retry-after"), None)
        retry_after = parse_retry_after(value, now)
    excerpt = text if len(text) <= _MESSAGE_BODY_CHARS else text[:_MESSAGE_BODY_CHARS] + "..."
    message = f"the provider answered HTTP {status}" + (f": {excerpt}" if excerpt else "")
    data = parsed if parsed is not _NOT_JSON else text
    return Answer(_error(message, status, text, data), retryable, retry_after)


def without_secrets(answer: Answer, options: InferOptions) -> Answer:
    """``answer`` with any copy of the request's key replaced: a provider that echoes the
    key it was sent (in an error message, say) must not put it into the run's history."""
    secrets = _secrets(options)
    if not any(secret in protocol.dumps(answer.memo).decode() for secret in secrets):
        return answer
    return dataclasses.replace(answer, memo=_scrub_value(answer.memo, secrets))


def _scrub_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {scrub(str(k), secrets): _scrub_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v, secrets) for v in value]
    return value


def answer_of_failure(exc: OutboundError, options: InferOptions) -> Answer:
    """No answer at all: unreachable, timed out, refused by the destination policy, too big."""
    secrets = _secrets(options)
    message = scrub(str(exc).replace(options.url, redact_url(options.url, secrets)), secrets)
    return Answer({"error": {"name": ERROR_NAME, "message": message}}, retryable=exc.retryable)


def _error(message: str, status: int, text: str, data: Any) -> dict[str, Any]:
    return {
        "error": {
            "name": ERROR_NAME,
            "message": message,
            "stack": text,
            "status": status,
            "data": data,
        }
    }


class _NotJson:
    __slots__ = ()


_NOT_JSON: Any = _NotJson()


def _json_or_none(raw: bytes) -> Any:
    if not raw.strip():
        return _NOT_JSON
    try:
        return protocol.loads(raw)
    except ValueError:
        return _NOT_JSON


__all__ = [
    "ERROR_NAME",
    "REDACTED",
    "Answer",
    "InferOptions",
    "InvalidOptions",
    "ProviderRequest",
    "answer_of",
    "answer_of_failure",
    "build_request",
    "parse_options",
    "redact_input",
    "redact_url",
    "redacted",
    "scrub",
    "without_secrets",
]
