"""``ServeHandler.handle_sync`` (the entry of sync frameworks) and the Lambda adapter's events."""

from __future__ import annotations

import base64
import threading
from typing import Any

import httpx
import pytest
from sdk_support import call_body, dev_client

import stepwise
from stepwise.adapters import aws_lambda
from stepwise.errors import ConfigError
from stepwise.protocol import canonical_json, dumps, loads, sign, verify
from stepwise.sdk.handler import ServeHandler, ServeResponse

KEY = "signkey-test-12345678"


def functions(client: stepwise.Stepwise) -> list[stepwise.Function]:
    @client.create_function(fn_id="sync", trigger=stepwise.TriggerEvent(event="demo/sync"))
    def sync_fn(ctx: stepwise.SyncContext) -> int:
        return ctx.step.run("one", lambda: 1)

    @client.create_function(fn_id="async", trigger=stepwise.TriggerEvent(event="demo/async"))
    async def async_fn(ctx: stepwise.Context) -> int:
        return await ctx.step.run("two", lambda: 2)

    return [sync_fn, async_fn]


def test_handle_sync_serves_def_and_async_functions_from_many_threads() -> None:
    client = dev_client()
    handler = ServeHandler(client, functions(client), framework="wsgi")
    results: dict[int, ServeResponse] = {}

    def call(i: int) -> None:
        fn_id = "demo-sync" if i % 2 else "demo-async"
        results[i] = handler.handle_sync(
            "POST",
            f"http://app.test/api/inngest?fnId={fn_id}&stepId=step",
            {"content-type": "application/json"},
            dumps(call_body()),
        )

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, result in results.items():
        assert result.status == 206
        [op] = loads(result.body)
        assert (op["op"], op["data"]) == ("StepRun", 1 if i % 2 else 2)
    assert len(results) == 8


def test_a_rest_api_event_syncs_the_url_with_its_stage() -> None:
    """Format 1.0 of a REST API: ``path`` lacks the stage, ``requestContext.path`` has it."""
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True, "modified": True})

    client = dev_client(httpx.MockTransport(server))
    handler = aws_lambda.serve(client, functions(client))
    event: dict[str, Any] = {
        "resource": "/api/inngest",
        "path": "/api/inngest",
        "httpMethod": "PUT",
        "headers": {
            "Host": "abc123.execute-api.eu-west-1.amazonaws.com",
            "X-Forwarded-Proto": "https",
            "X-Inngest-Server-Kind": "dev",
        },
        "multiValueHeaders": {"Host": ["abc123.execute-api.eu-west-1.amazonaws.com"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {"path": "/prod/api/inngest", "stage": "prod", "httpMethod": "PUT"},
        "body": None,
        "isBase64Encoded": False,
    }
    response = handler(event, None)
    assert response["statusCode"] == 200, response
    assert loads(response["body"]) == {"message": "Successfully registered", "modified": True}
    assert response["headers"]["x-inngest-framework"] == "aws-lambda"
    (register,) = seen
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/api/inngest"
    assert loads(register.content)["url"] == url


def test_an_http_api_event_with_a_base64_body_is_verified_and_answered_signed() -> None:
    client = stepwise.Stepwise("demo", signing_key=KEY, event_key="evkey", is_production=True)
    handler = aws_lambda.serve(client, functions(client))
    body = canonical_json(call_body())  # what the server signs
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/api/inngest",
        "rawQueryString": "fnId=demo-sync&stepId=step",
        "headers": {
            "host": "fn123.lambda-url.eu-west-1.on.aws",
            "x-forwarded-proto": "https",
            "content-type": "application/octet-stream",
            "x-inngest-signature": sign(body, KEY),
        },
        "queryStringParameters": {"fnId": "demo-sync", "stepId": "step"},
        "requestContext": {"http": {"method": "POST", "path": "/api/inngest"}},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }
    response = handler(event, None)
    assert response["statusCode"] == 206, response
    assert response["isBase64Encoded"] is False
    [op] = loads(response["body"])
    assert (op["op"], op["data"]) == ("StepRun", 1)
    reply = response["body"].encode()
    verify(reply, response["headers"]["x-inngest-signature"], [KEY], canonicalize=False)

    event["headers"]["x-inngest-signature"] = sign(body, "signkey-test-00000000")
    assert handler(event, None)["statusCode"] == 401


def test_lambda_refuses_forced_streaming_and_answers_plainly_when_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INNGEST_STREAMING", "force")
    client = dev_client()
    with pytest.raises(ConfigError, match="cannot"):
        aws_lambda.serve(client, functions(client))
    monkeypatch.setenv("INNGEST_STREAMING", "allow")
    client = dev_client()
    handler = aws_lambda.serve(client, functions(client))
    event = {
        "httpMethod": "POST",
        "path": "/api/inngest",
        "headers": {"Host": "example.test"},
        "queryStringParameters": {"fnId": "demo-sync", "stepId": "step"},
        "body": dumps(call_body()).decode(),
    }
    response = handler(event, None)
    assert response["statusCode"] == 206
    assert loads(response["body"])[0]["data"] == 1
