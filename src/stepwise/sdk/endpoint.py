"""Durable endpoints: an ordinary Starlette or FastAPI route whose steps are durable.

``client.endpoint()`` wraps a route handler that takes a ``ctx`` beside its own
parameters. A client's request runs the handler at once, in the request: each step runs
there, and its result is checkpointed to the server before the handler goes on (the
first checkpoint, ``POST /v1/checkpoint``, creates the run; later ones go to ``POST
/v1/checkpoint/{run}/steps``). When the handler returns, its response goes to the client
and the run completes with it.

If the handler reaches something it cannot finish in the request (a sleep, a wait, an
invoke, parallel steps, a step that failed and will be retried, or its own retriable
error), that is checkpointed, and the client is answered at once: a 302 to the run's
output (``/v1/http/runs/{run}/output?token=``, which waits for the run's end and gives
the handler's response), or with ``async_response="token"`` the run id and token as
JSON. From then on the server drives the run: it calls the route again with the original
method, URL and body, and headers (``X-Run-ID`` with ``X-Inngest-Signature``) that tell
this module to replay the run from its stored steps, as any function call does.

In the request, each step is run by the same ``Execution`` as a call from the server:
the handler runs again from the top after each step, its finished steps replayed from
their results, so code outside steps runs more than once, as in any durable function.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlencode, urljoin

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ..errors import ConfigError
from ..protocol import (
    RUN_COMPLETE_ID,
    GeneratorOp,
    Opcode,
    SignatureError,
    dumps,
    headers,
    loads,
    new_ulid,
    reentry_body,
    verify,
)
from .call import CallRequest
from .context import Context, SyncContext
from .execution import CallResult, Execution, OutputUnserializableError, error_to_wire
from .function import Function, FunctionOptions
from .handler import ServeHandler

HTTP_REQUEST = "inngest/http.request"
AsyncResponse = Literal["redirect", "token"]
# A re-entry's attempts are counted by the server: the handler reports every failed step
# as retriable, and the server turns the last into a failure (as for the JS SDK).
_UNBOUNDED = 2**31
_CHECKPOINT_ATTEMPTS = 5
_HOP_BY_HOP = frozenset(
    {"connection", "content-length", "content-encoding", "transfer-encoding", "keep-alive"}
)
_IN_REQUEST = (Opcode.STEP_RUN, Opcode.DEFER_ADD, Opcode.DEFER_ABORT)


class EndpointError(Exception):
    """The server refused or did not take a checkpoint: the client gets a 500."""


@dataclass(slots=True)
class _Call:
    """One request to the route: what the handler is called with."""

    request: Request
    kwargs: dict[str, Any]


_current: contextvars.ContextVar[_Call] = contextvars.ContextVar("stepwise_endpoint_call")


@dataclass(slots=True)
class _Run:
    """A run being driven inside its client's request."""

    run_id: str
    event: dict[str, Any]
    memos: dict[str, Any] = field(default_factory=dict)
    defers: dict[str, bool] = field(default_factory=dict)
    fn_id: str = ""
    app_id: str = ""
    token: str = ""
    started: bool = False


class DurableEndpoint:
    """The route ``client.endpoint()`` makes of a handler (see the module's docstring)."""

    def __init__(
        self,
        client: Any,
        handler: Callable[..., Any],
        *,
        fn_id: str | None,
        retries: int,
        async_response: AsyncResponse,
        redirect_url: str | None,
        framework: str,
    ) -> None:
        if async_response not in ("redirect", "token"):
            raise ConfigError("async_response must be 'redirect' or 'token'")
        self.client = client
        self.handler = handler
        self.fn_id = fn_id or ""
        self.retries = retries
        self.async_response = async_response
        self.redirect_url = redirect_url
        self._ctx_name = _context_parameter(handler)
        self.function = Function(
            app_id=client.app_id,
            fn_id=fn_id or getattr(handler, "__name__", "endpoint") or "endpoint",
            triggers=(),
            options=FunctionOptions(retries=retries),
            handler=self._run_async if inspect.iscoroutinefunction(handler) else self._run_sync,
        )
        self._serve = ServeHandler(client, [self.function], framework=framework)

    # -- the function the Execution runs ------------------------------------------------

    async def _run_async(self, ctx: Context[Any, Any]) -> dict[str, Any]:
        call = _current.get()
        result = await self.handler(**call.kwargs, **{self._ctx_name: ctx})
        return api_result(result)

    def _run_sync(self, ctx: SyncContext[Any, Any]) -> dict[str, Any]:
        call = _current.get()
        return api_result(self.handler(**call.kwargs, **{self._ctx_name: ctx}))

    # -- a request to the route ------------------------------------------------------------

    async def __call__(self, request: Request, kwargs: dict[str, Any]) -> Response:
        token = _current.set(_Call(request, kwargs))
        try:
            if headers.RUN_ID in request.headers and headers.SIGNATURE in request.headers:
                return await self._reenter(request)
            return await self._in_request(request)
        finally:
            _current.reset(token)

    async def _reenter(self, request: Request) -> Response:
        """The server goes on with the run: one call, answered as to any function call."""
        key: str | None = None
        if self.client.config.is_production:
            body = await request.body()
            try:
                key = verify(
                    reentry_body(body),
                    request.headers.get(headers.SIGNATURE),
                    self.client.config.signing_keys,
                    canonicalize=False,
                )
            except SignatureError:
                error = {"code": "sig_verification_failed", "message": "invalid signature"}
                return JSONResponse(error, status_code=401)
        force = request.headers.get(headers.FORCE_STEP_PLAN, "").strip().lower() == "true"
        call = CallRequest(
            run_id=request.headers[headers.RUN_ID],
            attempt=0,
            max_attempts=_UNBOUNDED,
            disable_immediate_execution=force,
            use_api=True,
            event={},
            events=[],
            steps={},
            defers={},
        )
        target = request.headers.get(headers.STEP_ID) or None
        answer = await self._serve.execute(self.function, call, target, key)
        return Response(answer.body, answer.status, headers=answer.headers)

    async def _in_request(self, request: Request) -> Response:
        run = _Run(run_id=new_ulid(), event=await _http_event(request, self.fn_id))
        while True:
            call = CallRequest(
                run_id=run.run_id,
                attempt=0,
                max_attempts=self.retries + 1,
                disable_immediate_execution=False,
                use_api=False,
                event=run.event,
                events=[run.event],
                steps=dict(run.memos),
                stack=tuple(run.memos),
                defers=dict(run.defers),
            )
            execution = Execution(
                client=self.client, function=self.function, request=call, target_step=None
            )
            result = await execution.run()
            ops = _ops_of(result)
            try:
                await self._checkpoint(run, ops)
            except EndpointError as exc:
                error = {"code": "checkpoint_failed", "message": str(exc)}
                return JSONResponse(error, status_code=500)
            for op in ops:
                if op.op is Opcode.RUN_COMPLETE:
                    return response_of(op.data)
            steps = [op for op in ops if op.op not in (Opcode.DEFER_ADD, Opcode.DEFER_ABORT)]
            if len(steps) == 1 and steps[0].op is Opcode.STEP_RUN:
                run.memos[steps[0].id] = {"data": steps[0].data}
                continue
            failed = [op for op in ops if op.id == RUN_COMPLETE_ID and op.op is Opcode.STEP_FAILED]
            if failed:
                # The handler's own final error: the run failed with it, and so does the
                # request. The client gets its name and message; the run keeps the rest.
                error = failed[0].error if isinstance(failed[0].error, dict) else {}
                shown = {k: error.get(k) for k in ("name", "message")}
                return JSONResponse(shown, status_code=500)
            return self._went_async(request, run)

    def _went_async(self, request: Request, run: _Run) -> Response:
        if self.async_response == "token":
            return JSONResponse({"run_id": run.run_id, "token": run.token})
        query = urlencode({"token": run.token})
        if self.redirect_url is not None:
            target = urljoin(str(request.url), self.redirect_url)
            sep = "&" if "?" in target else "?"
            location = f"{target}{sep}{urlencode({'runId': run.run_id, 'token': run.token})}"
        else:
            base = self.client.config.api_base_url
            location = f"{base}/v1/http/runs/{run.run_id}/output?{query}"
        return RedirectResponse(location, status_code=302)

    # -- checkpoints ---------------------------------------------------------------------

    async def _checkpoint(self, run: _Run, ops: list[GeneratorOp]) -> None:
        steps = [op.to_wire() for op in ops]
        now = int(time.time() * 1000)
        if not run.started:
            body: dict[str, Any] = {
                "run_id": run.run_id,
                "event": {"name": run.event["name"], "data": run.event["data"]},
                "steps": steps,
                "ts": now,
                "request_version": 2,
                "retries": self.retries,
            }
            answer = await self._post("/v1/checkpoint", body)
            data = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(data, dict) or not all(
                isinstance(data.get(k), str) for k in ("fn_id", "app_id", "token")
            ):
                raise EndpointError(
                    f"the server's answer to the run's start is not usable: {answer!r}"
                )
            run.fn_id, run.app_id, run.token = data["fn_id"], data["app_id"], data["token"]
            run.started = True
        else:
            body = {
                "fn_id": run.fn_id,
                "app_id": run.app_id,
                "run_id": run.run_id,
                "steps": steps,
                "ts": now,
            }
            await self._post(f"/v1/checkpoint/{run.run_id}/steps", body)
        for op in ops:
            if op.op is Opcode.DEFER_ADD:
                run.defers[op.id] = True
            elif op.op is Opcode.DEFER_ABORT:
                run.defers[str((op.opts or {}).get("target_hashed_id"))] = False

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        """POST a checkpoint, retrying what may pass on a second try (no answer, a 5xx)."""
        problem = ""
        for attempt in range(_CHECKPOINT_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.1 * 2 ** (attempt - 1))
            try:
                response = await self.client.api_request("POST", path, body=body)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 300:
                return loads(response.content) if response.content.strip() else None
            problem = f"{path} answered {response.status_code}: {response.text[:500]}"
            if response.status_code < 500 and response.status_code != 429:
                break
        raise EndpointError(problem)


def durable_endpoint(
    client: Any,
    *,
    fn_id: str | None = None,
    retries: int = 3,
    async_response: AsyncResponse = "redirect",
    redirect_url: str | None = None,
    framework: str = "starlette",
) -> Callable[[Callable[..., Any]], Callable[..., Awaitable[Response]]]:
    """Make a Starlette or FastAPI route handler durable (``client.endpoint()``)."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Awaitable[Response]]:
        endpoint = DurableEndpoint(
            client,
            handler,
            fn_id=fn_id,
            retries=retries,
            async_response=async_response,
            redirect_url=redirect_url,
            framework=framework,
        )
        return _route(handler, endpoint)

    return decorate


def _route(
    handler: Callable[..., Any], endpoint: DurableEndpoint
) -> Callable[..., Awaitable[Response]]:
    """A route function with the handler's parameters but ``ctx``, and the request: what
    Starlette calls with the request and FastAPI with the parameters it resolved."""
    signature = _signature(handler)
    request_name = next(
        (
            name
            for name, p in signature.parameters.items()
            if p.annotation in (Request, "Request")
            or (name == "request" and p.annotation is p.empty)
        ),
        None,
    )
    parameters = [p for name, p in signature.parameters.items() if name != endpoint._ctx_name]
    hidden = request_name is None
    if hidden:
        request_name = "_stepwise_request"
        parameters.append(
            inspect.Parameter(request_name, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        )
    positional = [p.name for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]

    async def route(*args: Any, **kwargs: Any) -> Response:
        kwargs.update(zip(positional, args, strict=False))
        request = kwargs[cast(str, request_name)]
        if hidden:
            del kwargs[cast(str, request_name)]
        return await endpoint(request, kwargs)

    route.__name__ = getattr(handler, "__name__", "endpoint")
    route.__qualname__ = getattr(handler, "__qualname__", route.__name__)
    route.__doc__ = handler.__doc__
    route.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=Response
    )
    route.durable_endpoint = endpoint  # type: ignore[attr-defined]
    return route


def _signature(handler: Callable[..., Any]) -> inspect.Signature:
    """The handler's signature, its annotations evaluated where they can be (FastAPI reads
    them from the route, which lives in another module than the handler)."""
    try:
        return inspect.signature(handler, eval_str=True)
    except (NameError, SyntaxError, TypeError):
        return inspect.signature(handler)


def _context_parameter(handler: Callable[..., Any]) -> str:
    """The handler's parameter that gets the run's context: typed ``Context`` or named ctx."""
    signature = _signature(handler)
    for name, p in signature.parameters.items():
        annotation = getattr(p.annotation, "__origin__", p.annotation)
        if isinstance(annotation, str):
            annotation = annotation.split("[", 1)[0].rsplit(".", 1)[-1]
            if annotation in ("Context", "SyncContext"):
                return name
        if annotation in (Context, SyncContext):
            return name
    if "ctx" in signature.parameters:
        return "ctx"
    raise ConfigError(
        f"a durable endpoint's handler needs a parameter for the run's context: "
        f"add `ctx: stepwise.Context` to {getattr(handler, '__name__', handler)!r}"
    )


async def _http_event(request: Request, fn: str) -> dict[str, Any]:
    """The ``inngest/http.request`` event of a client's request, as the JS SDK makes it."""
    body = await request.body()
    url = request.url
    ip = request.headers.get("x-forwarded-for") or request.headers.get("x-real-ip") or ""
    now = int(time.time() * 1000)
    return {
        "id": new_ulid(),
        "name": HTTP_REQUEST,
        "data": {
            "content_type": request.headers.get("content-type", ""),
            "domain": f"{url.scheme}://{url.netloc}",
            "ip": ip,
            "method": request.method,
            "path": url.path,
            "query_params": url.query,
            "body": body.decode("utf-8", "replace"),
            "fn": fn,
        },
        "user": {},
        "ts": now,
    }


def _ops_of(result: CallResult) -> list[GeneratorOp]:
    """The ops a call's answer carries; the function's own end (return value or error) as
    the ``RunComplete`` or run-level error op it stands for."""
    if result.status == 206:
        body = loads(result.body)
        return [GeneratorOp.from_wire(item) for item in (body if isinstance(body, list) else [])]
    if result.status == 200:
        data = loads(result.body)
        return [GeneratorOp(op=Opcode.RUN_COMPLETE, id=RUN_COMPLETE_ID, data=data, has_data=True)]
    try:
        error = loads(result.body)
    except ValueError:
        error = error_to_wire(RuntimeError(result.body.decode("utf-8", "replace")))
    opcode = Opcode.STEP_FAILED if result.no_retry else Opcode.STEP_ERROR
    return [GeneratorOp(op=opcode, id=RUN_COMPLETE_ID, error=error)]


def api_result(value: Any) -> dict[str, Any]:
    """What the handler returned, as the run's output: ``{status, headers, body, version}``
    (a ``Response`` as it is; any other value as JSON). What cannot be kept that way fails
    the run at once (``OutputUnserializableError``): a retry would return it again."""
    if isinstance(value, Response):
        body = getattr(value, "body", None)
        if not isinstance(body, bytes | memoryview):
            raise OutputUnserializableError("a durable endpoint cannot return a streaming response")
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise OutputUnserializableError(
                "a durable endpoint's response body must be UTF-8 text"
            ) from None
        kept = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in value.raw_headers
            if k.decode("latin-1").lower() not in _HOP_BY_HOP
        }
        return {"status": value.status_code, "headers": kept, "body": text, "version": 2}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    try:
        body = dumps(value).decode()
    except TypeError as exc:
        raise OutputUnserializableError(f"the handler returned a non-JSON value: {exc}") from None
    return {
        "status": 200,
        "headers": {"content-type": "application/json"},
        "body": body,
        "version": 2,
    }


def response_of(result: Any) -> Response:
    """The client's response from the run's output (``api_result``'s shape)."""
    if not (isinstance(result, dict) and isinstance(result.get("status"), int)):
        return JSONResponse(result)
    given = result.get("headers")
    kept = {
        str(k): str(v)
        for k, v in (given.items() if isinstance(given, dict) else ())
        if str(k).lower() not in _HOP_BY_HOP
    }
    body = result.get("body")
    text = body if isinstance(body, str) else dumps(body).decode()
    return Response(text.encode(), status_code=result["status"], headers=kept)
