"""Serve functions from AWS Lambda: ``handler = serve(client, [fn])``.

The handler takes the proxy events of API Gateway REST APIs and HTTP APIs (payload
format 1.0 and 2.0) and of Lambda function URLs (format 2.0), and returns the matching
response object. The URL the app syncs is rebuilt from the ``Host`` and
``X-Forwarded-Proto`` headers and the request path (for format 1.0 the path from
``requestContext``, stage included); set ``serve_origin`` and ``serve_path`` when the public
URL differs (a custom domain, a base path mapping).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from ..sdk.client import Stepwise
from ..sdk.function import Function
from ..sdk.handler import ServeHandler

LambdaHandler = Callable[[Mapping[str, Any], Any], dict[str, Any]]


def serve(
    client: Stepwise,
    functions: Sequence[Function],
    *,
    serve_origin: str | None = None,
    serve_path: str | None = None,
) -> LambdaHandler:
    """A Lambda handler ``(event, context) -> response`` serving ``functions``."""
    handler = ServeHandler(
        client,
        functions,
        framework="aws-lambda",
        serve_origin=serve_origin,
        serve_path=serve_path,
    )

    def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        request_context = event.get("requestContext") or {}
        if event.get("version") == "2.0":
            method, path = request_context["http"]["method"], event["rawPath"]
            query = event.get("rawQueryString") or ""
        else:
            method, path = event["httpMethod"], request_context.get("path") or event["path"]
            multi = event.get("multiValueQueryStringParameters")
            single = event.get("queryStringParameters") or {}
            query = urlencode(multi, doseq=True) if multi else urlencode(single)
        host = headers.get("host") or request_context.get("domainName", "")
        url = f"{headers.get('x-forwarded-proto', 'https')}://{host}{path}"
        if query:
            url += f"?{query}"
        raw = event.get("body") or ""
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        result = handler.handle_sync(method, url, headers, body)
        return {
            "statusCode": result.status,
            "headers": result.headers,
            "body": result.body.decode(),
            "isBase64Encoded": False,
        }

    return lambda_handler
