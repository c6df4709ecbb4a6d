"""A local stand-in for what sits in front of a Lambda function: API Gateway or a function URL.

It listens for HTTP, turns each request into the proxy event AWS would hand the function,
calls the Lambda handler in the request's thread, and turns the handler's response object
back into HTTP. The shapes, as the AWS documentation gives them:

``apigw-v1`` — API Gateway REST API proxy integration (payload format 1.0; "Input format
of a Lambda function for proxy integration"): ``resource``, ``path``, ``httpMethod``,
``headers`` and ``multiValueHeaders`` (names as the client sent them),
``queryStringParameters`` and ``multiValueQueryStringParameters`` (``null`` when empty),
``pathParameters``, ``stageVariables``, ``requestContext`` (with ``path``, ``httpMethod``,
``stage``, ``identity``, ...), ``body`` (a string or ``null``) and ``isBase64Encoded``. This
shim plays an API whose ``binaryMediaTypes`` is ``*/*``, a common setting for Lambda
proxies, so every body arrives base64-encoded. The response is ``statusCode``,
``headers``, ``multiValueHeaders``, ``body`` and ``isBase64Encoded``.

``apigw-v2`` — API Gateway HTTP API (payload format 2.0; "Working with AWS Lambda proxy
integrations for HTTP APIs"): ``version: "2.0"``, ``routeKey``, ``rawPath``,
``rawQueryString``, ``cookies``, ``headers`` (lower-case names, repeated values joined by
commas), ``queryStringParameters`` (repeated values joined by commas),
``requestContext.http`` (``method``, ``path``, ``protocol``, ``sourceIp``, ``userAgent``),
``body`` and ``isBase64Encoded``: text content types (``text/*``, JSON, XML, JavaScript)
arrive as text, anything else base64-encoded. The response is ``statusCode``, ``headers``,
``cookies``, ``body`` and ``isBase64Encoded``; a response without ``statusCode`` is taken as
a 200 with the object itself as the JSON body.

``function-url`` — a Lambda function URL ("Invoking Lambda function URLs", request and
response payloads): the 2.0 format above, with ``routeKey`` and ``stage`` both
``$default`` and ``requestContext.domainName`` ``<url-id>.lambda-url.<region>.on.aws``.

Both front ends add ``X-Forwarded-For``, ``X-Forwarded-Port`` and ``X-Forwarded-Proto`` and
keep the client's ``Host``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

LambdaHandler = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]
SHAPES = ("apigw-v1", "apigw-v2", "function-url")
_TEXT_TYPES = ("application/json", "application/javascript", "application/xml")


class LambdaContext:
    """The bits of the Lambda context object a handler commonly reads."""

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "stepwise-shim"
        self.memory_limit_in_mb = 128

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml"))


def _body(body: bytes, *, binary: bool) -> tuple[str | None, bool]:
    if not body:
        return None, False
    if binary:
        return base64.b64encode(body).decode(), True
    return body.decode(), False


def v1_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    parts = urlsplit(target)
    query = parse_qsl(parts.query, keep_blank_values=True)
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        multi_query.setdefault(name, []).append(value)
    text, encoded = _body(body, binary=True)  # binaryMediaTypes: */*
    return {
        "resource": "/{proxy+}",
        "path": parts.path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {n: v[-1] for n, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": parts.path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "shimapi",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": parts.path,
            "protocol": "HTTP/1.1",
            "stage": "$default",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": _get(headers, "user-agent")},
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def v2_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    domain: str,
    api_id: str,
) -> dict[str, Any]:
    parts = urlsplit(target)
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    text, encoded = _body(body, binary=not _is_text(joined.get("content-type", "")))
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": joined,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if text is not None:
        event["body"] = text
    return event


def _get(headers: list[tuple[str, str]], name: str) -> str:
    return next((v for n, v in headers if n.lower() == name), "")


def event_for(
    shape: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    if shape == "apigw-v1":
        return v1_event(method, target, headers, body)
    if shape == "apigw-v2":
        return v2_event(
            method,
            target,
            headers,
            body,
            domain="shimapi.execute-api.us-east-1.amazonaws.com",
            api_id="shimapi",
        )
    if shape == "function-url":
        return v2_event(
            method,
            target,
            headers,
            body,
            domain="shimurl.lambda-url.us-east-1.on.aws",
            api_id="shimurl",
        )
    raise ValueError(f"unknown event shape {shape!r}; one of {SHAPES}")


def http_response(
    shape: str, result: Mapping[str, Any]
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of the handler's response object, as the front end sends them."""
    if shape != "apigw-v1" and "statusCode" not in result:
        return 200, [("content-type", "application/json")], json.dumps(result).encode()
    headers = [(str(n), str(v)) for n, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(str(name), str(v)) for v in values]
    headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return int(result["statusCode"]), headers, body


def serve(handler: LambdaHandler, shape: str, *, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server in front of ``handler``; call ``serve_forever`` (or ``shutdown``) on it."""
    if shape not in SHAPES:
        raise ValueError(f"unknown event shape {shape!r}; one of {SHAPES}")

    class Front(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _invoke(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = [
                *self.headers.items(),
                ("X-Forwarded-For", self.client_address[0]),
                ("X-Forwarded-Port", str(port)),
                ("X-Forwarded-Proto", "http"),
            ]
            event = event_for(shape, self.command, self.path, headers, body)
            status, out_headers, out_body = http_response(shape, handler(event, LambdaContext()))
            self.send_response(status)
            for name, value in out_headers:
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("content-length", str(len(out_body)))
            self.end_headers()
            self.wfile.write(out_body)

        do_GET = do_PUT = do_POST = do_DELETE = _invoke

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the app's log is for the app

    server = ThreadingHTTPServer((host, port), Front)
    server.daemon_threads = True
    return server


def run(handler: LambdaHandler, shape: str, *, host: str = "127.0.0.1", port: int) -> None:
    """Serve ``handler`` behind ``shape``'s front end until the process is stopped."""
    server = serve(handler, shape, host=host, port=port)
    print(f"lambda shim ({shape}) on http://{host}:{port}", flush=True)
    server.serve_forever()
