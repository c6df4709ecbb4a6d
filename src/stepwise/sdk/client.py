"""The client: an app's identity and keys, its functions, and the HTTP calls it makes."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import httpx
from starlette.responses import Response

from ..errors import ApiError, ConfigError, SendEventError
from ..protocol import dumps, hash_signing_key, headers, loads, make_seed
from .config import ClientConfig, resolve_config
from .context import Context, SyncContext
from .current import execution_var
from .defer import deferred_trigger
from .event import EventLike, events_for_sending
from .flow import (
    Batch,
    Concurrency,
    Debounce,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    check_option,
    normalize_concurrency,
    normalize_idempotency,
)
from .function import AsyncHandler, Function, FunctionOptions, SyncHandler
from .identity import SDK_HEADER_VALUE
from .logger import LoggerMiddleware
from .metadata import update as metadata_update
from .middleware import (
    Middleware,
    MiddlewareStack,
    SendInput,
    SendOutput,
    check_middleware,
    register_all,
)
from .options import CancelOn, Timeouts, normalize_cancel_on
from .triggers import Trigger, normalize_triggers

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
SIGNALS_PATH = "/v1/signals"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How event sends retry on transport errors and 5xx: jittered exponential backoff."""

    attempts: int = 5
    base_delay: float = 0.1

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0:
            raise ConfigError("a retry policy needs at least one attempt and a delay >= 0")

    def delay(self, failed_attempt: int) -> float:
        return self.base_delay * (2.0**failed_attempt) * (0.5 + random.random())


class FunctionDecorator:
    """Turns a handler into a ``Function``; ``async def`` gets ``Context``, ``def`` gets ``SyncContext``."""

    def __init__(
        self,
        client: Stepwise,
        fn_id: str,
        triggers: tuple[Trigger, ...],
        options: FunctionOptions,
        on_failure: AsyncHandler | SyncHandler | None = None,
        middleware: tuple[Middleware, ...] = (),
        deferred: bool = False,
    ) -> None:
        self._client = client
        self._fn_id = fn_id
        self._triggers = triggers
        self._options = options
        self._on_failure = on_failure
        self._middleware = middleware
        self._deferred = deferred

    @overload
    def __call__(self, handler: Callable[[Context[Any, Any]], Awaitable[Any]]) -> Function: ...

    @overload
    def __call__(self, handler: Callable[[SyncContext[Any, Any]], Any]) -> Function: ...

    def __call__(self, handler: Callable[[Any], Any]) -> Function:
        function = Function(
            app_id=self._client.app_id,
            fn_id=self._fn_id,
            triggers=self._triggers,
            options=self._options,
            handler=handler,
            on_failure=self._on_failure,
            middleware=self._middleware,
            deferred=self._deferred,
        )
        register_all(self._middleware, self._client, function)
        return function


class Stepwise:
    """An app's client. Unset arguments come from ``INNGEST_*`` environment variables.

    Mode: ``is_production=None`` reads ``INNGEST_DEV`` ("1"/"true"/a URL => dev,
    "0"/"false" => production); without it, production only if a signing key is set.

    ``middleware`` runs around every function of the app and every event it sends, after
    the built-in ``LoggerMiddleware`` (see ``stepwise.Middleware``).

    ``session_propagation`` (default ``INNGEST_SESSION_PROPAGATION``, else on): a run's
    sessions (``ctx.sessions``) go with the events it sends, the functions it invokes and
    the runs it defers, so all of them stay in the same sessions.
    """

    def __init__(
        self,
        app_id: str,
        *,
        event_key: str | None = None,
        signing_key: str | None = None,
        signing_key_fallback: str | None = None,
        is_production: bool | None = None,
        api_base_url: str | None = None,
        event_api_base_url: str | None = None,
        env: str | None = None,
        logger: logging.Logger | None = None,
        transport: httpx.AsyncBaseTransport | httpx.BaseTransport | None = None,
        middleware: Iterable[Middleware] | None = None,
        session_propagation: bool | None = None,
    ) -> None:
        if not app_id:
            raise ConfigError("app_id must not be empty")
        self.config: ClientConfig = resolve_config(
            app_id=app_id,
            event_key=event_key,
            signing_key=signing_key,
            signing_key_fallback=signing_key_fallback,
            is_production=is_production,
            api_base_url=api_base_url,
            event_api_base_url=event_api_base_url,
            env=env,
            session_propagation=session_propagation,
        )
        self.logger = logger or logging.getLogger("stepwise")
        own = check_middleware(middleware, what="client")
        self.middleware: tuple[Middleware, ...] = (LoggerMiddleware(self.logger), *own)
        """Every function's middleware, outermost first: the built-in logger, then ``middleware``."""
        # ``transport`` exists so tests (and embedders) can route HTTP without sockets;
        # an ``httpx.MockTransport`` serves both the async and the sync paths.
        self._transport = transport
        self._ssl_context: ssl.SSLContext | None = None
        self.send_retry = RetryPolicy()
        register_all(self.middleware, self, None)

    @property
    def app_id(self) -> str:
        return self.config.app_id

    @property
    def is_production(self) -> bool:
        return self.config.is_production

    # -- functions -------------------------------------------------------------------

    def create_function(
        self,
        *,
        fn_id: str,
        trigger: Trigger | list[Trigger] | tuple[Trigger, ...],
        retries: int | None = None,
        name: str | None = None,
        description: str | None = None,
        cancel_on: CancelOn | list[CancelOn] | tuple[CancelOn, ...] | None = None,
        timeouts: Timeouts | None = None,
        on_failure: AsyncHandler | SyncHandler | None = None,
        concurrency: int | Concurrency | Sequence[int | Concurrency] | None = None,
        run_concurrency: Concurrency | None = None,
        throttle: Throttle | None = None,
        rate_limit: RateLimit | None = None,
        idempotency: str | None = None,
        debounce: Debounce | None = None,
        batch_events: Batch | None = None,
        priority: Priority | None = None,
        singleton: Singleton | None = None,
        middleware: Iterable[Middleware] | None = None,
    ) -> FunctionDecorator:
        """Decorate a handler to make it a durable function with ID ``<app_id>-<fn_id>``.

        ``cancel_on``: up to 5 events that cancel a running run. ``timeouts``: cancel runs
        that wait too long to start or take too long to finish. ``on_failure``: a handler
        (``def`` or ``async def``) called with the ``inngest/function.failed`` event once a
        run has failed for good; it is served as the function ``<id>-failure``.

        Flow control: ``concurrency`` (an int, a ``Concurrency`` or a list of up to 2:
        steps executing at once), ``run_concurrency`` (a ``Concurrency`` on whole runs: a run
        holds its slot from its start to its end, sleeping or not),
        ``throttle``, ``rate_limit``, ``idempotency`` (a CEL expression: one run per
        evaluated key per 24 h), ``debounce``, ``batch_events``, ``priority`` and
        ``singleton``. Batching cannot be combined with ``cancel_on``, ``debounce``,
        ``singleton`` or ``priority``, nor ``idempotency`` with ``rate_limit``.

        ``middleware``: this function's own, run inside (after) the client's.
        """
        check_option(timeouts, Timeouts, what="timeouts")
        if on_failure is not None and not callable(on_failure):
            raise ConfigError(f"on_failure must be callable, not {on_failure!r}")
        options = FunctionOptions(
            name=name,
            description=description,
            retries=retries,
            cancel_on=normalize_cancel_on(cancel_on),
            timeouts=timeouts,
            concurrency=normalize_concurrency(concurrency),
            run_concurrency=check_option(run_concurrency, Concurrency, what="run_concurrency"),
            throttle=check_option(throttle, Throttle, what="throttle"),
            rate_limit=check_option(rate_limit, RateLimit, what="rate_limit"),
            idempotency=normalize_idempotency(idempotency),
            debounce=check_option(debounce, Debounce, what="debounce"),
            batch_events=check_option(batch_events, Batch, what="batch_events"),
            priority=check_option(priority, Priority, what="priority"),
            singleton=check_option(singleton, Singleton, what="singleton"),
        )
        own = check_middleware(middleware, what="function")
        return FunctionDecorator(self, fn_id, normalize_triggers(trigger), options, on_failure, own)

    def create_defer(
        self,
        *,
        fn_id: str,
        retries: int | None = None,
        name: str | None = None,
        description: str | None = None,
        concurrency: int | Concurrency | Sequence[int | Concurrency] | None = None,
        timeouts: Timeouts | None = None,
    ) -> FunctionDecorator:
        """Decorate a handler to make a deferred function: one that another run starts
        with ``ctx.defer(id, function=..., data=...)`` once it ends, completed or failed.

        Its only trigger is the ``inngest/deferred.schedule`` event the server sends for it;
        the handler's ``ctx.event.data`` is the data the defer gave, ``ctx.parents`` the run
        that deferred it.
        """
        check_option(timeouts, Timeouts, what="timeouts")
        options = FunctionOptions(
            name=name,
            description=description,
            retries=retries,
            timeouts=timeouts,
            concurrency=normalize_concurrency(concurrency),
        )
        trigger = deferred_trigger(f"{self.app_id}-{fn_id}")
        return FunctionDecorator(self, fn_id, (trigger,), options, deferred=True)

    # -- durable endpoints -------------------------------------------------------------

    def endpoint(
        self,
        *,
        fn_id: str | None = None,
        retries: int = 3,
        async_response: Literal["redirect", "token"] = "redirect",
        redirect_url: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Awaitable[Response]]]:
        """Make a Starlette or FastAPI route durable: its handler takes a ``ctx`` (typed
        ``stepwise.Context``, or ``SyncContext`` for a ``def``) beside its own parameters, and
        its steps are checkpointed to the server as they run in the request.

        When the handler cannot finish in the request (a sleep, a wait, a failed step to
        retry), the client gets a 302 to the run's output (or, with ``async_response=
        "token"``, ``{"run_id", "token"}``; with ``redirect_url``, a 302 there with
        ``runId`` and ``token``), and the server finishes the run by calling the route again.
        ``fn_id`` names the function (by default the server names it by method and path);
        ``retries`` is the run's retry budget. See docs/durable-endpoints.md.
        """
        # Imported here: the endpoint module builds on the serve handler, which imports this.
        from .endpoint import durable_endpoint

        return durable_endpoint(
            self,
            fn_id=fn_id,
            retries=retries,
            async_response=async_response,
            redirect_url=redirect_url,
        )

    # -- metadata ----------------------------------------------------------------------

    async def set_metadata(
        self,
        run_id: str,
        values: Mapping[str, Any],
        *,
        kind: str = "default",
        step_id: str | None = None,
    ) -> None:
        """Set metadata of ``kind`` on a run, or on one of its steps (``step_id``: the
        step's id as the function names it), replacing what that kind held. Works on runs
        that ended too; raises ``ApiError`` when the server refuses."""
        if not isinstance(run_id, str) or not run_id:
            raise ConfigError("set_metadata needs a run id")
        target: dict[str, Any] = {"run_id": run_id}
        if step_id is not None:
            target["step_id"] = step_id
        body = {"target": target, "metadata": [metadata_update(values, kind, None)]}
        try:
            response = await self.api_request("POST", f"/v1/runs/{run_id}/metadata", body=body)
        except httpx.HTTPError as exc:
            raise ApiError(502, "api_unreachable", f"could not reach the server: {exc}") from exc
        if response.status_code >= 400:
            raise ApiError(
                response.status_code,
                "metadata_refused",
                f"the server refused the metadata ({response.status_code}):"
                f" {_message_of(response)}",
            )

    def set_metadata_sync(
        self,
        run_id: str,
        values: Mapping[str, Any],
        *,
        kind: str = "default",
        step_id: str | None = None,
    ) -> None:
        """``set_metadata`` for code without an event loop (and ``def`` handlers)."""
        asyncio.run(self.set_metadata(run_id, values, kind=kind, step_id=step_id))

    # -- HTTP plumbing -----------------------------------------------------------------

    def base_headers(self) -> dict[str, str]:
        out = {
            "content-type": "application/json",
            headers.SDK: SDK_HEADER_VALUE,
            headers.USER_AGENT: SDK_HEADER_VALUE,
        }
        if self.config.env:
            out[headers.ENV] = self.config.env
        return out

    def _verify(self) -> ssl.SSLContext:
        # Building an SSL context loads the CA bundle (milliseconds); do it once.
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def async_http(self) -> httpx.AsyncClient:
        transport = (
            self._transport if isinstance(self._transport, httpx.AsyncBaseTransport) else None
        )
        if transport is not None:
            return httpx.AsyncClient(transport=transport, timeout=_TIMEOUT)
        return httpx.AsyncClient(verify=self._verify(), timeout=_TIMEOUT)

    def sync_http(self) -> httpx.Client:
        transport = self._transport if isinstance(self._transport, httpx.BaseTransport) else None
        if transport is not None:
            return httpx.Client(transport=transport, timeout=_TIMEOUT)
        return httpx.Client(verify=self._verify(), timeout=_TIMEOUT)

    async def api_request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        extra_headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Call the server API with Bearer auth, retrying once with the fallback key on 401/403."""
        url = self.config.api_base_url + path
        request_headers = {**self.base_headers(), **(extra_headers or {})}
        content = None if body is None else dumps(body)
        keys: list[str | None] = list(self.config.signing_keys) or [None]
        async with self.async_http() as http:
            response: httpx.Response | None = None
            for key in keys:
                if key is not None:
                    request_headers[headers.AUTHORIZATION] = f"Bearer {hash_signing_key(key)}"
                response = await http.request(
                    method, url, content=content, headers=request_headers, params=params
                )
                if response.status_code not in (401, 403):
                    break
            assert response is not None
            return response

    # -- signals -----------------------------------------------------------------------

    async def send_signal(self, signal: str, data: Any = None) -> str | None:
        """Resume the run waiting in ``step.wait_for_signal`` for ``signal``, passing ``data``.

        Returns the resumed run's ID when the server reports one. Raises ``ApiError`` when
        the server refuses (for example, no run waits for the signal) or cannot be reached.
        """
        if not isinstance(signal, str) or not signal:
            raise ConfigError("send_signal needs a signal name")
        try:
            response = await self.api_request(
                "POST", SIGNALS_PATH, body={"signal": signal, "data": data}
            )
        except httpx.HTTPError as exc:
            raise ApiError(502, "api_unreachable", f"could not reach the server: {exc}") from exc
        return _signal_outcome(response)

    def send_signal_sync(self, signal: str, data: Any = None) -> str | None:
        """``send_signal`` for code without an event loop (and ``def`` handlers)."""
        return asyncio.run(self.send_signal(signal, data))

    # -- events ------------------------------------------------------------------------

    async def send(self, events: EventLike | Sequence[EventLike]) -> list[str]:
        """Send one event or many; returns the IDs the server assigned, in order.

        The middleware's ``transform_send_input`` sees the events first (last registered
        first), and ``transform_send_output`` the IDs.
        """
        stack = MiddlewareStack(self.middleware)
        send = SendInput(self, events_for_sending(events, propagate=self._inherited_sessions()))
        await stack.call("transform_send_input", send, reverse=True)
        ids = await self._post_events(send.events)
        result = SendOutput(self, send.events, ids)
        await stack.call("transform_send_output", result)
        return result.ids

    def send_sync(self, events: EventLike | Sequence[EventLike]) -> list[str]:
        """``send`` for code without an event loop (and ``def`` handlers)."""
        stack = MiddlewareStack(self.middleware)
        send = SendInput(self, events_for_sending(events, propagate=self._inherited_sessions()))
        stack.call_sync("transform_send_input", send, reverse=True)
        ids = self._post_events_sync(send.events)
        result = SendOutput(self, send.events, ids)
        stack.call_sync("transform_send_output", result)
        return result.ids

    async def _post_events(self, events: list[dict[str, Any]]) -> list[str]:
        url, body, request_headers = self._prepare_send(events)
        policy = self.send_retry
        async with self.async_http() as http:
            for attempt in range(policy.attempts):
                try:
                    outcome = _send_outcome(
                        await http.post(url, content=body, headers=request_headers)
                    )
                except httpx.TransportError as exc:
                    outcome = f"event API unreachable: {exc}"
                if isinstance(outcome, list):
                    return outcome
                if attempt + 1 < policy.attempts:
                    await asyncio.sleep(policy.delay(attempt))
        raise SendEventError(outcome)

    def _post_events_sync(self, events: list[dict[str, Any]]) -> list[str]:
        url, body, request_headers = self._prepare_send(events)
        policy = self.send_retry
        with self.sync_http() as http:
            for attempt in range(policy.attempts):
                try:
                    outcome = _send_outcome(http.post(url, content=body, headers=request_headers))
                except httpx.TransportError as exc:
                    outcome = f"event API unreachable: {exc}"
                if isinstance(outcome, list):
                    return outcome
                if attempt + 1 < policy.attempts:
                    time.sleep(policy.delay(attempt))
        raise SendEventError(outcome)

    def _prepare_send(self, events: list[dict[str, Any]]) -> tuple[str, bytes, dict[str, str]]:
        key = self.config.event_key
        if not key:
            raise ConfigError("no event key: pass event_key or set INNGEST_EVENT_KEY")
        url = f"{self.config.event_api_base_url}/e/{key}"
        # One seed for every attempt, so the server derives the same event IDs on a retry.
        request_headers = {**self.base_headers(), headers.EVENT_ID_SEED: make_seed()}
        if not events:
            raise ConfigError("no events to send")
        return url, dumps(events), request_headers

    def _inherited_sessions(self) -> dict[str, str] | None:
        """Sent from inside a run of this client: the sessions the events inherit."""
        running = execution_var.get()
        return running.sessions if running is not None and running.client is self else None


def _message_of(response: httpx.Response) -> str:
    try:
        body = loads(response.content)
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return response.text[:500]


def _send_outcome(response: httpx.Response) -> list[str] | str:
    """The event IDs, or (for a 5xx, worth retrying) why the send failed; raises on 4xx."""
    if response.status_code >= 500:
        return f"event API answered {response.status_code}: {_message_of(response)}"
    if response.status_code >= 400:
        raise SendEventError(
            f"event API refused the events ({response.status_code}): {_message_of(response)}"
        )
    try:
        body = loads(response.content)
    except ValueError as exc:
        raise SendEventError("event API answered with a body that is not JSON") from exc
    # Servers report failures in the body's ``status`` too; trust it over the HTTP code.
    if not isinstance(body, dict) or body.get("status", 200) != 200:
        raise SendEventError(f"event API refused the events: {_message_of(response)}")
    ids = body.get("ids")
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _signal_outcome(response: httpx.Response) -> str | None:
    try:
        body = loads(response.content) if response.content else None
    except ValueError:
        body = None
    status = response.status_code
    if status >= 400:
        code = body.get("code") if isinstance(body, dict) else None
        raise ApiError(
            status,
            code if isinstance(code, str) and code else "send_signal_failed",
            f"the server refused the signal ({status}): {_message_of(response)}",
        )
    # The run ID may sit at the top level or in a REST v1 ``data`` envelope.
    for scope in (body, body.get("data") if isinstance(body, dict) else None):
        if isinstance(scope, dict):
            for key in ("run_id", "runId", "runID"):
                if isinstance(scope.get(key), str):
                    return str(scope[key])
    return None
