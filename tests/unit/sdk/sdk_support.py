"""Helpers for driving the serve endpoint in-process with hand-built call bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from stepwise import Stepwise
from stepwise.adapters.starlette import app as starlette_app
from stepwise.protocol import dumps, hash_step_id, loads
from stepwise.sdk.function import Function

SERVE = "http://app.test/api/inngest"
RUN_ID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def h(user_id: str) -> str:
    return hash_step_id(user_id)


def call_body(
    *,
    steps: dict[str, Any] | None = None,
    attempt: int = 0,
    max_attempts: int | None = 5,
    event: dict[str, Any] | None = None,
    disable_immediate_execution: bool = False,
    use_api: bool = False,
    stack: list[str] | None = None,
) -> dict[str, Any]:
    """A call body shaped like the reference server's (protocol reference §2.3).

    ``stack`` is the completion order of the memoized steps (default: the order of ``steps``).
    """
    ev = event or {
        "name": "user/signup",
        "data": {"email": "a@example.com"},
        "id": "01HEVENT0000000000000000000",
        "ts": 1700000000000,
        "user": {},
    }
    memos = steps or {}
    return {
        "event": ev,
        "events": [ev],
        "steps": memos,
        "ctx": {
            "run_id": RUN_ID,
            "env": "",
            "step_id": "step",
            "attempt": attempt,
            "max_attempts": max_attempts,
            "stack": {"stack": list(memos) if stack is None else stack, "current": len(memos)},
            "disable_immediate_execution": disable_immediate_execution,
            "use_api": use_api,
        },
        "version": -1,
        "use_api": use_api,
    }


def dev_client(transport: httpx.MockTransport | None = None, **kwargs: Any) -> Stepwise:
    return Stepwise("demo", is_production=False, transport=transport, **kwargs)


class App:
    """A Starlette app serving some functions, reached through httpx.ASGITransport."""

    def __init__(self, client: Stepwise, functions: list[Function]) -> None:
        self.client = client
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=starlette_app(client, functions)),
            base_url="http://app.test",
        )

    async def call(
        self,
        fn: Function,
        body: dict[str, Any] | bytes,
        *,
        step_id: str = "step",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.http.post(
            "/api/inngest",
            params={"fnId": fn.id, "stepId": step_id},
            content=body if isinstance(body, bytes) else dumps(body),
            headers={"content-type": "application/json", **(headers or {})},
        )

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()


def ops(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 206, response.text
    body = loads(response.content)
    assert isinstance(body, list)
    return body


Recorder = Callable[[httpx.Request], httpx.Response]
