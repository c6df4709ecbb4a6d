"""JSON responses and the error body every API failure uses."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ...errors import ApiError

MAX_JSON_DEPTH = 64
Model = TypeVar("Model", bound=BaseModel)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status, headers=exc.headers or None)


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
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from exc
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise ApiError(
            400, "json_too_deep", f"request body nests deeper than {MAX_JSON_DEPTH} levels"
        )
    return value


async def read_optional_body(
    request: Request, model: type[Model], *, max_bytes: int, code: str, shape: str
) -> Model:
    """An optional JSON body (empty reads as ``{}``) checked by ``model``; else a 400
    ``code`` naming the first thing wrong and, for the client, the ``shape`` expected."""
    try:
        raw = await read_json(request, max_bytes=max_bytes)
    except ApiError as exc:
        if exc.code != "empty_body":
            raise
        raw = {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, code, f"{where}: {first['msg']} ({shape})") from None


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True if containers nest more than ``limit`` deep (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
