"""A local stand-in for the AI providers: one HTTP server that speaks each one's format.

It serves, under a prefix per provider, the endpoint its adapters call, checks that the
key is where that provider expects it (a 401 in the provider's own error shape if not),
and answers by the prompt's first word:

* ``ok ...``: a success in the provider's format, whose text is ``echo: <prompt>``;
* ``reject ...``: a 400 with the provider's error body;
* ``busy ...``: a 429 with ``Retry-After: 2`` the first time that exact prompt is seen,
  then a success;
* ``slow ...``: no answer until the test ends (past the server's outbound timeout).

``keys`` maps each provider to the key it accepts; ``requests`` keeps what reached it,
with the time each arrived.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.peer import Answer, Peer, Received

# provider name -> (path prefix, where the key goes)
PROVIDERS = {
    "openai": "/openai/v1/chat/completions",
    "openai-responses": "/openai/v1/responses",
    "anthropic": "/anthropic/v1/messages",
    "gemini": "/gemini/v1beta/models/gemini-test:generateContent",
    "grok": "/xai/v1/chat/completions",
    "deepseek": "/deepseek/v1/chat/completions",
    "azure": "/azure/openai/deployments/gpt-deploy/chat/completions",
    "compatible": "/local/v1/chat/completions",
}
RETRY_AFTER_S = 2


@dataclass(frozen=True)
class Arrival:
    provider: str
    at: float
    request: Received

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.request.body)
        return parsed


class Providers:
    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        self.release = threading.Event()
        self.arrivals: list[Arrival] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.peer = Peer(self.respond)

    @property
    def url(self) -> str:
        return self.peer.url

    def __enter__(self) -> Providers:
        self.peer.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.peer.__exit__(None, None, None)

    def to(self, provider: str, prompt: str) -> list[Arrival]:
        """The requests that reached ``provider`` with ``prompt``, in order."""
        with self._lock:
            return [
                a
                for a in self.arrivals
                if a.provider == provider and prompt_of(provider, a.body) == prompt
            ]

    # ---- answering ---------------------------------------------------------------------

    def respond(self, request: Received) -> Answer:
        url = urlsplit(request.path)
        provider = next((p for p, path in PROVIDERS.items() if url.path == path), None)
        if provider is None or request.method != "POST":
            return _json(404, {"error": f"no such endpoint {request.method} {url.path}"})
        arrival = Arrival(provider, time.time(), request)
        with self._lock:
            self.arrivals.append(arrival)
        if not self._authorized(provider, request, parse_qs(url.query)):
            return _json(401, _error_body(provider, 401, "invalid api key"))
        prompt = prompt_of(provider, arrival.body)
        word = prompt.split(" ", 1)[0]
        if word == "reject":
            return _json(400, _error_body(provider, 400, "the request is not valid"))
        if word == "busy":
            with self._lock:
                first = prompt not in self._seen
                self._seen.add(prompt)
            if first:
                body = _error_body(provider, 429, "rate limited")
                return _json(429, body, {"retry-after": str(RETRY_AFTER_S)})
        if word == "slow":
            self.release.wait(timeout=120)
            return _json(200, success_body(provider, "too late"))
        return _json(200, success_body(provider, f"echo: {prompt}"))

    def _authorized(self, provider: str, request: Received, query: dict[str, list[str]]) -> bool:
        key = self.keys.get(provider)
        headers = request.headers
        if provider == "compatible":
            return True  # a local model server: it checks no key
        if provider == "anthropic":
            return headers.get("x-api-key") == key and "anthropic-version" in headers
        if provider == "gemini":
            return query.get("key") == [key]
        if provider == "azure":
            return headers.get("api-key") == key and "api-version" in query
        return headers.get("authorization") == f"Bearer {key}"


def prompt_of(provider: str, body: dict[str, Any]) -> str:
    """The text of the last user turn of a request, in any of the formats."""
    if provider == "openai-responses":
        given = body.get("input")
        return given if isinstance(given, str) else str(given[-1]["content"])
    if provider == "gemini":
        return str(body["contents"][-1]["parts"][0]["text"])
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else str(content[0]["text"])


def success_body(provider: str, text: str) -> dict[str, Any]:
    if provider == "anthropic":
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 2},
        }
    if provider == "gemini":
        return {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
            ],
            "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 5},
            "modelVersion": "gemini-test",
        }
    if provider == "openai-responses":
        return {
            "id": "resp_1",
            "object": "response",
            "model": "gpt-test",
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
            "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        }
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_800_000_000,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def _error_body(provider: str, status: int, message: str) -> dict[str, Any]:
    if provider == "anthropic":
        kind = {401: "authentication_error", 429: "rate_limit_error"}.get(
            status, "invalid_request_error"
        )
        return {"type": "error", "error": {"type": kind, "message": message}}
    if provider == "gemini":
        state = {401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED"}.get(status, "INVALID_ARGUMENT")
        return {"error": {"code": status, "message": message, "status": state}}
    return {"error": {"message": message, "type": "invalid_request_error", "code": str(status)}}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(
        status, {"content-type": "application/json", **(headers or {})}, json.dumps(body).encode()
    )


__all__ = ["PROVIDERS", "RETRY_AFTER_S", "Arrival", "Providers", "prompt_of", "success_body"]
