"""``client.endpoint()`` in-process: the route, what it posts to the server (an
``httpx.MockTransport`` plays the server), what its client gets, and a re-entry.

The real server runs these in ``tests/integration/test_endpoints.py``.
"""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from sdk_support import dev_client, h
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import stepwise
from stepwise.errors import ConfigError, NonRetriableError
from stepwise.protocol import RUN_COMPLETE_ID, dumps, loads
from stepwise.sdk.endpoint import api_result, response_of

TOKEN = "the-token"


class FakeServer:
    """Answers the checkpoint API as the server does, and keeps what it was sent."""

    def __init__(self, *, refuse: int | None = None, memos: dict[str, Any] | None = None) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.refuse = refuse
        self.memos = memos or {}
        self.event = {"name": "inngest/http.request", "data": {}, "id": "e", "ts": 1, "user": {}}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path.endswith("/batch"):
            return httpx.Response(200, json=[self.event])
        if request.method == "GET" and path.endswith("/actions"):
            return httpx.Response(200, json=self.memos)
        body = loads(request.content)
        self.posts.append((path, body))
        if self.refuse is not None:
            return httpx.Response(self.refuse, json={"error": "no", "code": "no", "status": 400})
        if path == "/v1/checkpoint":
            data = {
                "fn_id": "fn",
                "app_id": "app",
                "run_id": body["run_id"],
                "token": TOKEN,
                "realtime_token": "rt",
            }
            return httpx.Response(200, json={"data": data})
        return httpx.Response(200, json={"saved": True})

    def ops(self) -> list[list[str]]:
        return [[step["op"] for step in body["steps"]] for _, body in self.posts]


def app_with(server: FakeServer, *routes: tuple[str, Any, list[str]]) -> httpx.AsyncClient:
    client = dev_client(httpx.MockTransport(server), api_base_url="http://server.test")
    built = [Route(path, client.endpoint()(fn), methods=methods) for path, fn, methods in routes]
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=Starlette(routes=built)), base_url="http://app.test"
    )


async def two_steps(request: Request, ctx: stepwise.Context) -> Response:
    a = await ctx.step.run("a", lambda: "hello")
    b = await ctx.step.run("b", lambda: f"{a} world")
    return JSONResponse({"msg": b}, status_code=202, headers={"x-my": "yes"})


async def sleeps(request: Request, ctx: stepwise.Context) -> dict[str, str]:
    await ctx.step.run("a", lambda: "a")
    await ctx.step.sleep("nap", "1h")
    return {"done": "yes"}


async def test_a_route_that_finishes_checkpoints_each_step_and_answers_as_returned() -> None:
    server = FakeServer()
    async with app_with(server, ("/hi", two_steps, ["GET"])) as http:
        response = await http.get("/hi?x=1")
    assert (response.status_code, response.json()) == (202, {"msg": "hello world"})
    assert response.headers["x-my"] == "yes"
    assert [path for path, _ in server.posts] == [
        "/v1/checkpoint",
        *[f"/v1/checkpoint/{server.posts[0][1]['run_id']}/steps"] * 2,
    ]
    assert server.ops() == [["StepRun"], ["StepRun"], ["RunComplete"]]
    start = server.posts[0][1]
    assert start["retries"] == 3 and start["request_version"] == 2
    assert start["event"]["name"] == "inngest/http.request"
    data = start["event"]["data"]
    assert (data["domain"], data["path"], data["method"], data["query_params"]) == (
        "http://app.test",
        "/hi",
        "GET",
        "x=1",
    )
    assert start["steps"][0]["id"] == h("a") and start["steps"][0]["data"] == "hello"
    done = server.posts[2][1]["steps"][0]
    assert done["id"] == RUN_COMPLETE_ID
    assert done["data"]["status"] == 202 and loads(done["data"]["body"]) == {"msg": "hello world"}


async def test_a_route_that_sleeps_checkpoints_the_sleep_and_redirects_to_the_output() -> None:
    server = FakeServer()
    async with app_with(server, ("/s", sleeps, ["POST"])) as http:
        response = await http.post("/s", content=b'{"q": 1}', headers={"content-type": "a/b"})
    assert response.status_code == 302
    run_id = server.posts[0][1]["run_id"]
    location = f"http://server.test/v1/http/runs/{run_id}/output?token={TOKEN}"
    assert response.headers["location"] == location
    assert server.ops() == [["StepRun"], ["Sleep"]]
    assert server.posts[0][1]["event"]["data"]["body"] == '{"q": 1}'


async def test_a_refused_checkpoint_fails_the_request_without_retrying() -> None:
    server = FakeServer(refuse=400)
    async with app_with(server, ("/hi", two_steps, ["GET"])) as http:
        response = await http.get("/hi")
    assert response.status_code == 500
    assert response.json()["code"] == "checkpoint_failed"
    assert len(server.posts) == 1


async def test_a_reentry_replays_the_run_from_the_servers_steps() -> None:
    server = FakeServer(memos={h("a"): {"data": "a"}, h("nap"): None})
    async with app_with(server, ("/s", sleeps, ["GET"])) as http:
        response = await http.get(
            "/s", headers={"x-run-id": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "x-inngest-signature": ""}
        )
    # Answered as a function call (the run's end, with its response), not as the route.
    assert response.headers["x-inngest-sdk"].startswith("stepwise-py:")
    assert response.status_code == 200
    assert response_of(response.json()).body == dumps({"done": "yes"})
    assert server.posts == []  # a re-entry checkpoints nothing


class Item(BaseModel):
    n: int


def test_the_route_keeps_its_parameters_but_ctx_and_needs_a_context() -> None:
    client = dev_client()

    async def handler(item_id: str, body: Item, ctx: stepwise.Context) -> Item:
        return body

    route = client.endpoint()(handler)
    names = list(inspect.signature(route).parameters)
    assert names == ["item_id", "body", "_stepwise_request"]

    async def no_context(request: Request) -> None: ...

    with pytest.raises(ConfigError, match="context"):
        client.endpoint()(no_context)

    # Annotations that cannot be evaluated here (a class local to a function) still work.
    class Local(BaseModel):
        n: int

    async def local(body: Local, ctx: stepwise.Context) -> None: ...

    assert list(inspect.signature(client.endpoint()(local)).parameters) == [
        "body",
        "_stepwise_request",
    ]


def test_what_a_handler_returns_becomes_the_runs_output() -> None:
    made = api_result(Response(b"made", status_code=201, headers={"x-a": "1"}))
    assert (made["status"], made["body"], made["version"]) == (201, "made", 2)
    assert made["headers"]["x-a"] == "1"
    assert "content-length" not in made["headers"]  # the body decides it when sent again
    assert api_result({"a": 1}) == {
        "status": 200,
        "headers": {"content-type": "application/json"},
        "body": '{"a":1}',
        "version": 2,
    }

    class Model(BaseModel):
        n: int

    assert loads(api_result(Model(n=2))["body"]) == {"n": 2}
    # What cannot be kept fails the run at once: a retry would return it again.
    with pytest.raises(NonRetriableError, match="streaming"):
        api_result(StreamingResponse(iter([b"x"])))
    with pytest.raises(NonRetriableError, match="UTF-8"):
        api_result(Response(b"\xff\xfe"))
    with pytest.raises(NonRetriableError, match="non-JSON"):
        api_result({"a": object()})
