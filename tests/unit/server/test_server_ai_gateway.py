"""The AI gateway's pure parts: where each format puts the key, what an answer makes of
the step, and that no secret survives into what the history keeps."""

from __future__ import annotations

from typing import Any

import pytest

from stepwise.server.engine import ai_gateway
from stepwise.server.engine.backoff import parse_retry_after
from stepwise.server.engine.outbound import OutboundError, OutboundResponse

NOW = 1_800_000_000_000
KEY = "sk-live-0123456789"


def options(**fields: Any) -> ai_gateway.InferOptions:
    base: dict[str, Any] = {
        "url": "https://api.example.com/v1/chat/completions",
        "auth_key": KEY,
        "format": "openai-chat",
        "body": {"model": "m", "messages": []},
    }
    return ai_gateway.parse_options({**base, **fields})


@pytest.mark.parametrize(
    ("fmt", "header", "value"),
    [
        ("openai-chat", "authorization", f"Bearer {KEY}"),
        ("openai-responses", "authorization", f"Bearer {KEY}"),
        ("grok", "authorization", f"Bearer {KEY}"),
        ("anthropic", "x-api-key", KEY),
        ("azure-openai", "api-key", KEY),
        ("bedrock", "authorization", KEY),
    ],
)
def test_each_format_puts_the_key_in_its_header(fmt: str, header: str, value: str) -> None:
    request = ai_gateway.build_request(options(format=fmt, headers={"X-Trace": "t"}))
    assert request.headers[header] == value
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-trace"] == "t"
    assert request.body == b'{"model":"m","messages":[]}'


def test_gemini_puts_the_key_in_the_query_unless_the_sdk_did() -> None:
    url = "https://g.example/v1beta/models/flash:generateContent"
    assert ai_gateway.build_request(options(format="gemini", url=url)).url == f"{url}?key={KEY}"
    given = f"{url}?key={KEY}"  # as both official SDKs build it
    assert ai_gateway.build_request(options(format="gemini", url=given)).url == given


def test_a_header_the_adapter_set_wins_and_no_key_adds_nothing() -> None:
    request = ai_gateway.build_request(options(headers={"Authorization": "Bearer other"}))
    assert request.headers["authorization"] == "Bearer other"
    request = ai_gateway.build_request(options(auth_key=""))
    assert "authorization" not in request.headers


def test_what_the_history_keeps_has_no_secret() -> None:
    opts = options(
        format="gemini",
        url=f"https://user:pw@g.example/models/x:generateContent?key={KEY}&alt=json",
        headers={
            "x-goog-api-key": "another-secret",
            "X-Custom-Token": "tok-123456",
            "X-Echo": f"key is {KEY}",
            "anthropic-version": "2023-06-01",
        },
    )
    kept = ai_gateway.redacted(opts)
    text = repr(kept)
    for secret in (KEY, "another-secret", "tok-123456", "pw"):
        assert secret not in text
    assert (
        kept["url"]
        == "https://[redacted]@g.example/models/x:generateContent?key=[redacted]&alt=json"
    )
    assert kept["headers"]["anthropic-version"] == "2023-06-01"
    assert kept["headers"]["X-Echo"] == "key is [redacted]"


def response(status: int, body: bytes, **headers: str) -> OutboundResponse:
    return OutboundResponse(status, tuple(headers.items()), body)


def test_a_2xx_json_answer_is_the_result() -> None:
    answer = ai_gateway.answer_of(response(200, b'{"id": "x"}'), NOW)
    assert answer.memo == {"data": {"id": "x"}} and not answer.failed


def test_a_2xx_answer_that_is_not_json_fails_without_retry() -> None:
    answer = ai_gateway.answer_of(response(200, b"<html>"), NOW)
    assert answer.failed and not answer.retryable
    assert answer.memo["error"]["stack"] == "<html>"


def test_a_4xx_answer_fails_at_once_with_status_and_body() -> None:
    body = b'{"error": {"message": "bad model"}}'
    answer = ai_gateway.answer_of(response(400, body), NOW)
    assert not answer.retryable
    assert answer.memo == {
        "error": {
            "name": "AIGatewayError",
            "message": 'the provider answered HTTP 400: {"error": {"message": "bad model"}}',
            "stack": body.decode(),
            "status": 400,
            "data": {"error": {"message": "bad model"}},
        }
    }


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_a_429_or_5xx_may_pass_and_brings_its_retry_after(status: int) -> None:
    answer = ai_gateway.answer_of(response(status, b"busy", **{"retry-after": "7"}), NOW)
    assert answer.retryable and answer.retry_after_ms == NOW + 7000
    assert answer.memo["error"]["data"] == "busy"


def test_no_answer_names_no_secret() -> None:
    opts = options(format="gemini", url=f"https://g.example/m?key={KEY}")
    failure = OutboundError(
        f"no complete answer from https://g.example/m?key={KEY} within 3 s", retryable=True
    )
    answer = ai_gateway.answer_of_failure(failure, opts)
    assert answer.retryable and KEY not in answer.memo["error"]["message"]
    assert "within 3 s" in answer.memo["error"]["message"]


def test_retry_after_as_seconds_or_a_date() -> None:
    assert parse_retry_after("2", NOW) == NOW + 2000
    assert parse_retry_after("Thu, 15 Jan 2027 08:00:00 GMT", NOW) is not None
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("0", NOW) == NOW + 1000  # never sooner than a second


def test_wrap_input_hides_credential_arguments_only() -> None:
    given = [{"api_key": "s", "max_tokens": 3, "nested": [{"Authorization": "x"}]}, "text"]
    assert ai_gateway.redact_input(given) == [
        {"api_key": "[redacted]", "max_tokens": 3, "nested": [{"Authorization": "[redacted]"}]},
        "text",
    ]


def test_an_answer_that_echoes_the_key_is_kept_without_it() -> None:
    body = f'{{"error": {{"message": "Incorrect API key provided: {KEY}"}}}}'.encode()
    answer = ai_gateway.without_secrets(ai_gateway.answer_of(response(401, body), NOW), options())
    assert KEY not in repr(answer.memo)
    assert answer.memo["error"]["data"] == {
        "error": {"message": "Incorrect API key provided: [redacted]"}
    }
    plain = ai_gateway.answer_of(response(200, b'{"id": "x"}'), NOW)
    assert ai_gateway.without_secrets(plain, options()) is plain
