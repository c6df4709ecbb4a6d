"""The adapter matrix's app: one set of scenario functions, served by one framework adapter.

``STEPWISE_TEST_ADAPTER`` names the adapter (see ``serve_matrix``); the app's ID and its
event names carry it. Sync frameworks serve the
scenarios as ``def`` functions and async ones as ``async def`` functions; each also serves
the ``steps`` scenario in the other style (event ``matrix/other-style``), since every
adapter takes both. Everything runs in production mode: each call is signed.

``STEPWISE_TEST_EXAMPLE`` instead names a docs/adapters.md example extracted to a file:
Django's ``urls.py`` and Lambda's handler module are served here (the other examples
run as scripts of their own).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from types import ModuleType
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

import stepwise
from stepwise.sdk.function import Function

ADAPTER = os.environ["STEPWISE_TEST_ADAPTER"]
PORT = int(os.environ["PORT"])
HOST = "127.0.0.1"
SYNC_ADAPTERS = {
    "flask",
    "django-wsgi",
    "wsgi",
    "lambda-apigw-v1",
    "lambda-apigw-v2",
    "lambda-function-url",
}
BIG = 1_200_000  # a step result above aiohttp's default 1 MiB request limit


def make_client(suffix: str = "") -> stepwise.Stepwise:
    server = os.environ["STEPWISE_TEST_SERVER"]
    return stepwise.Stepwise(
        app_id=f"matrix-{ADAPTER}{suffix}",
        is_production=True,
        signing_key=os.environ["STEPWISE_TEST_SIGNING_KEY"],
        event_key="test-event-key",
        api_base_url=server,
        event_api_base_url=server,
    )


def event(name: str) -> stepwise.TriggerEvent:
    # Every adapter's app may share one server: each has event names of its own.
    return stepwise.TriggerEvent(event=f"matrix/{ADAPTER}/{name}")


def async_functions(client: stepwise.Stepwise, *, only_steps: bool = False) -> list[Function]:
    """The scenarios as ``async def`` functions; or only ``steps``, as ``other-style``."""

    name = "other-style" if only_steps else "steps"

    @client.create_function(fn_id=name, trigger=event(name))
    async def steps(ctx: stepwise.Context) -> dict[str, Any]:
        a = await ctx.step.run("a", lambda: ctx.event.data["n"] + 1)
        b = await ctx.step.run("b", lambda: a * 2)
        return {"a": a, "b": b}

    if only_steps:
        return [steps]

    @client.create_function(fn_id="sleep", trigger=event("sleep"))
    async def sleep(ctx: stepwise.Context) -> list[str]:
        before = await ctx.step.run("before", lambda: "before")
        await ctx.step.sleep("nap", "1s")
        return [before, await ctx.step.run("after", lambda: "after")]

    @client.create_function(fn_id="retry", trigger=event("retry"), retries=2)
    async def retry(ctx: stepwise.Context) -> str:
        def flaky() -> str:
            if ctx.attempt == 0:
                raise RuntimeError("first attempt fails")
            return f"ok on attempt {ctx.attempt}"

        return await ctx.step.run("flaky", flaky)

    @client.create_function(fn_id="parallel", trigger=event("parallel"))
    async def parallel(ctx: stepwise.Context) -> list[int]:
        def branch(i: int) -> Callable[[], Any]:
            return lambda: ctx.step.run(f"p{i}", lambda: i * 10)

        return await ctx.step.parallel([branch(i) for i in range(3)])

    @client.create_function(fn_id="wait", trigger=event("wait"))
    async def wait(ctx: stepwise.Context) -> Any:
        got = await ctx.step.wait_for_event(
            "approval", event=f"matrix/{ADAPTER}/approved", timeout="1m", match="data.id"
        )
        return None if got is None else got.data

    @client.create_function(fn_id="child", trigger=event("child"))
    async def child(ctx: stepwise.Context) -> int:
        return await ctx.step.run("square", lambda: ctx.event.data["x"] ** 2)

    @client.create_function(fn_id="invoke", trigger=event("invoke"))
    async def invoke(ctx: stepwise.Context) -> Any:
        return await ctx.step.invoke("call-child", function=child, data={"x": 7})

    @client.create_function(fn_id="failure", trigger=event("failure"), retries=0)
    async def failure(ctx: stepwise.Context) -> None:
        def decline() -> None:
            raise stepwise.NonRetriableError("card declined")

        await ctx.step.run("charge", decline)

    @client.create_function(fn_id="big-state", trigger=event("big-state"))
    async def big_state(ctx: stepwise.Context) -> int:
        blob = await ctx.step.run("blob", lambda: "x" * BIG)
        return await ctx.step.run("measure", lambda: len(blob))

    return [steps, sleep, retry, parallel, wait, child, invoke, failure, big_state]


def def_functions(client: stepwise.Stepwise, *, only_steps: bool = False) -> list[Function]:
    """The scenarios as ``def`` functions; or only ``steps``, as ``other-style``."""

    name = "other-style" if only_steps else "steps"

    @client.create_function(fn_id=name, trigger=event(name))
    def steps(ctx: stepwise.SyncContext) -> dict[str, Any]:
        a = ctx.step.run("a", lambda: ctx.event.data["n"] + 1)
        b = ctx.step.run("b", lambda: a * 2)
        return {"a": a, "b": b}

    if only_steps:
        return [steps]

    @client.create_function(fn_id="sleep", trigger=event("sleep"))
    def sleep(ctx: stepwise.SyncContext) -> list[str]:
        before = ctx.step.run("before", lambda: "before")
        ctx.step.sleep("nap", "1s")
        return [before, ctx.step.run("after", lambda: "after")]

    @client.create_function(fn_id="retry", trigger=event("retry"), retries=2)
    def retry(ctx: stepwise.SyncContext) -> str:
        def flaky() -> str:
            if ctx.attempt == 0:
                raise RuntimeError("first attempt fails")
            return f"ok on attempt {ctx.attempt}"

        return ctx.step.run("flaky", flaky)

    @client.create_function(fn_id="parallel", trigger=event("parallel"))
    def parallel(ctx: stepwise.SyncContext) -> list[int]:
        def branch(i: int) -> Callable[[], int]:
            return lambda: ctx.step.run(f"p{i}", lambda: i * 10)

        return ctx.step.parallel([branch(i) for i in range(3)])

    @client.create_function(fn_id="wait", trigger=event("wait"))
    def wait(ctx: stepwise.SyncContext) -> Any:
        got = ctx.step.wait_for_event(
            "approval", event=f"matrix/{ADAPTER}/approved", timeout="1m", match="data.id"
        )
        return None if got is None else got.data

    @client.create_function(fn_id="child", trigger=event("child"))
    def child(ctx: stepwise.SyncContext) -> int:
        return ctx.step.run("square", lambda: ctx.event.data["x"] ** 2)

    @client.create_function(fn_id="invoke", trigger=event("invoke"))
    def invoke(ctx: stepwise.SyncContext) -> Any:
        return ctx.step.invoke("call-child", function=child, data={"x": 7})

    @client.create_function(fn_id="failure", trigger=event("failure"), retries=0)
    def failure(ctx: stepwise.SyncContext) -> None:
        def decline() -> None:
            raise stepwise.NonRetriableError("card declined")

        ctx.step.run("charge", decline)

    @client.create_function(fn_id="big-state", trigger=event("big-state"))
    def big_state(ctx: stepwise.SyncContext) -> int:
        blob = ctx.step.run("blob", lambda: "x" * BIG)
        return ctx.step.run("measure", lambda: len(blob))

    return [steps, sleep, retry, parallel, wait, child, invoke, failure, big_state]


def streamed_functions(client: stepwise.Stepwise) -> list[Function]:
    """The streamed endpoint's functions: ``steps``, and ``gated``, whose step ends only once
    the test creates its gate file (so the test sees the reply open before the step ends)."""

    @client.create_function(fn_id="steps", trigger=event("streamed"))
    async def steps(ctx: stepwise.Context) -> dict[str, Any]:
        a = await ctx.step.run("a", lambda: ctx.event.data["n"] + 1)
        b = await ctx.step.run("b", lambda: a * 2)
        return {"a": a, "b": b}

    @client.create_function(fn_id="gated", trigger=event("gated"))
    async def gated(ctx: stepwise.Context) -> str:
        def through_the_gate() -> str:  # in a worker thread: it may block
            gate = Path(f"{os.environ['STEPWISE_TEST_LEDGER']}.{ctx.run_id}.gate")
            while not gate.exists():
                time.sleep(0.05)
            return "through"

        return await ctx.step.run("gate", through_the_gate)

    return [steps, gated]


# -- serving ------------------------------------------------------------------------------


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def run_wsgi(app: Any) -> None:
    make_server(HOST, PORT, app, server_class=ThreadingWSGIServer).serve_forever()


def run_asgi(app: Any) -> None:
    import uvicorn

    uvicorn.run(app, host=HOST, port=PORT, log_level="warning")


def django_setup(urlconf: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        ROOT_URLCONF=urlconf,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        SECRET_KEY="adapter-matrix",
        # Call requests reach 4 MB (docs/adapters.md); Django's default is 2.5 MB.
        DATA_UPLOAD_MAX_MEMORY_SIZE=5 * 1024 * 1024,
    )
    django.setup()


@dataclass(frozen=True)
class Mount:
    """One serve endpoint of the app: its path, and the handler arguments behind it."""

    path: str
    client: stepwise.Stepwise
    functions: list[Function]
    streaming: Any = None


def by_path(mounts: list[Mount], make: Callable[[Mount], Any], path_of: Any) -> Any:
    """One callable in front of the adapters with no routing of their own (ASGI, WSGI, Lambda)."""
    apps = {m.path: make(m) for m in mounts}
    return lambda *args: apps[path_of(*args)](*args)


def serve_matrix(mounts: list[Mount]) -> None:
    if ADAPTER == "starlette":
        from starlette.applications import Starlette

        from stepwise.adapters import starlette

        routes = [
            route
            for m in mounts
            for route in starlette.serve(
                m.client, m.functions, serve_path=m.path, streaming=m.streaming
            )
        ]
        run_asgi(Starlette(routes=routes))
    elif ADAPTER == "fastapi":
        from fastapi import FastAPI

        from stepwise.adapters import fastapi

        fastapi_app = FastAPI()
        for m in mounts:
            fastapi.serve(
                fastapi_app, m.client, m.functions, serve_path=m.path, streaming=m.streaming
            )
        run_asgi(fastapi_app)
    elif ADAPTER == "asgi":
        from stepwise.adapters import asgi

        def make_asgi(m: Mount) -> Any:
            return asgi.app(m.client, m.functions, streaming=m.streaming)

        def asgi_path(scope: Any, *_: Any) -> str:
            return "/api/inngest" if scope["type"] == "lifespan" else scope["path"]

        route = by_path(mounts, make_asgi, asgi_path)

        async def asgi_app(scope: Any, receive: Any, send: Any) -> None:  # ASGI 3 to uvicorn
            await route(scope, receive, send)

        run_asgi(asgi_app)
    elif ADAPTER == "wsgi":
        from stepwise.adapters import wsgi

        def make_wsgi(m: Mount) -> Any:
            return wsgi.app(m.client, m.functions, streaming=m.streaming)

        run_wsgi(by_path(mounts, make_wsgi, lambda environ, _: environ["PATH_INFO"]))
    elif ADAPTER == "flask":
        from flask import Flask

        from stepwise.adapters import flask

        flask_app = Flask(__name__)
        for m in mounts:
            flask.serve(flask_app, m.client, m.functions, serve_path=m.path, streaming=m.streaming)
        flask_app.run(host=HOST, port=PORT, threaded=True)
    elif ADAPTER == "quart":
        from quart import Quart

        from stepwise.adapters import quart

        quart_app = Quart(__name__)
        for m in mounts:
            quart.serve(quart_app, m.client, m.functions, serve_path=m.path, streaming=m.streaming)
        run_asgi(quart_app)
    elif ADAPTER == "litestar":
        from litestar import Litestar

        from stepwise.adapters import litestar

        handlers = [
            litestar.serve(m.client, m.functions, serve_path=m.path, streaming=m.streaming)
            for m in mounts
        ]
        run_asgi(Litestar(route_handlers=handlers))
    elif ADAPTER in ("django-wsgi", "django-asgi"):
        from stepwise.adapters import django

        urls = ModuleType("matrix_urls")
        urls.urlpatterns = [  # type: ignore[attr-defined]
            django.serve(
                m.client,
                m.functions,
                async_mode=ADAPTER == "django-asgi",
                serve_path=m.path,
                streaming=m.streaming,
            )
            for m in mounts
        ]
        sys.modules["matrix_urls"] = urls
        django_setup("matrix_urls")
        run_django()
    elif ADAPTER == "aiohttp":
        from aiohttp import web

        from stepwise.adapters import aiohttp

        aiohttp_app = web.Application(client_max_size=8 * 1024 * 1024)
        for m in mounts:
            aiohttp.serve(
                aiohttp_app, m.client, m.functions, serve_path=m.path, streaming=m.streaming
            )
        web.run_app(aiohttp_app, host=HOST, port=PORT, print=None)
    elif ADAPTER == "tornado":
        import asyncio

        import tornado.web

        from stepwise.adapters import tornado as sw_tornado

        async def main() -> None:
            tornado_app = tornado.web.Application()
            for m in mounts:
                sw_tornado.serve(
                    tornado_app, m.client, m.functions, serve_path=m.path, streaming=m.streaming
                )
            tornado_app.listen(PORT, address=HOST)
            await asyncio.Event().wait()

        asyncio.run(main())
    elif ADAPTER.startswith("lambda-"):
        from stepwise.adapters import aws_lambda

        def make_lambda(m: Mount) -> Any:
            # A buffered Lambda cannot stream: "allow" falls back to plain replies.
            assert m.streaming in (None, "allow")
            return aws_lambda.serve(m.client, m.functions)

        def event_path(event: Any, _: Any) -> str:
            return str(event.get("rawPath") or event["path"])

        run_lambda(by_path(mounts, make_lambda, event_path))
    else:
        raise SystemExit(f"unknown adapter {ADAPTER!r}")


def run_django() -> None:
    if ADAPTER.endswith("asgi"):
        from django.core.asgi import get_asgi_application

        run_asgi(get_asgi_application())
    else:
        from django.core.wsgi import get_wsgi_application

        run_wsgi(get_wsgi_application())


def run_lambda(handler: Any) -> None:
    from support import lambda_shim

    lambda_shim.run(handler, ADAPTER.removeprefix("lambda-"), host=HOST, port=PORT)


def load_example(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["example_app"] = module
    spec.loader.exec_module(module)
    return module


def serve_example(path: str) -> None:
    if ADAPTER.startswith("django-"):
        sys.path.insert(0, os.path.dirname(path))
        django_setup(os.path.basename(path).removesuffix(".py"))
        run_django()
    elif ADAPTER.startswith("lambda-"):
        run_lambda(load_example(path).handler)
    else:
        raise SystemExit(f"the {ADAPTER} example runs as a script of its own")


if __name__ == "__main__":
    if os.environ.get("STEPWISE_TEST_EXAMPLE"):
        serve_example(os.environ["STEPWISE_TEST_EXAMPLE"])
    else:
        plain, streamed = make_client(), make_client("-streamed")
        if ADAPTER in SYNC_ADAPTERS:
            served = def_functions(plain) + async_functions(plain, only_steps=True)
        else:
            served = async_functions(plain) + def_functions(plain, only_steps=True)
        # Lambda cannot stream: its endpoint allows streaming and must answer plainly.
        mode = "allow" if ADAPTER.startswith("lambda-") else "force"
        serve_matrix(
            [
                Mount("/api/inngest", plain, served),
                Mount("/api/streamed", streamed, streamed_functions(streamed), mode),
            ]
        )
