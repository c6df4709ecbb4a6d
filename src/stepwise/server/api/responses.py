"""JSON responses and the error body every API failure uses."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError

MAX_JSON_DEPTH = 64


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status)


async def read_json(request: Request, *, max_bytes: int) -> Any:
    """The request body as JSON, or an ``ApiError`` that says what is wrong with it."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise ApiError(413, "payload_too_large", f"request body is larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise ApiError(
                413, "payload_too_large", f"request body is larger than {max_bytes} bytes"
            )
    if not body.strip():
        raise ApiError(400, "empty_body", "request body is empty; expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from exc
