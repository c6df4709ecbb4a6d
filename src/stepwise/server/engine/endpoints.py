"""Durable endpoints: runs an SDK starts inside an ordinary HTTP handler.

The JS SDK 4.x (``inngest.endpoint()``) and ours (``stepwise.endpoints``) run the
handler's steps in the client's request and post each to the server before going on:
``POST /v1/checkpoint`` creates the run (``plan_start``), ``POST
/v1/checkpoint/{run}/steps`` records the next ops. Each checkpoint is the answer of a call
that no job stands for (``NO_JOB``), turned into a transition by the executor's own op
handling (``checkpoint_transition``): a step's result, the run's next job and any timer
commit together. While the handler runs its steps in the request, a checkpoint adds no
call. Once it hits something it cannot do there (a sleep, a wait, parallel steps, a
failed step, the function's own retriable error), its checkpoint plans that as for any
run, and from then on the server drives the run by calling the handler's URL again
(``Driver.reenter``) until it completes; the original client reads the final response
with the run's ``token`` (``GET /v1/http/runs/{run}/output``) and its stream with
``stream_token`` (``/v1/realtime/sse``).

An endpoint has no sync: its app (named by the handler's host) and function (by its
id, or its method and path) are created with its first run.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ...errors import ApiError
from ...protocol import GeneratorOp, Opcode, new_ulid
from ..store.records import (
    NO_JOB,
    AppRecord,
    EndpointRecord,
    EndpointStart,
    EventRecord,
    FunctionRecord,
    Job,
    JobKind,
    NewJob,
    NewRun,
    RunRecord,
    RunState,
    RunStatus,
    RunUpdate,
    Transition,
)
from .defers import DEFER_OPS
from .registry import FunctionSpec, spec_from_record

if TYPE_CHECKING:
    from ..store.records import Pause
    from .executor import Executor

HTTP_REQUEST = "inngest/http.request"
DEFAULT_RETRIES = 3  # the JS SDK's default for an endpoint
MAX_RETRIES = 20
MAX_STREAM_BYTES = 32 * 1024 * 1024  # what one run's stream may hold
DRIVER = "sync"  # an endpoint function's ``driver.type``: the server calls its URL as is
FRAMEWORK = "endpoint"  # an endpoint app's framework: it has no serve endpoint to sync

# Ops a handler checkpoints while it goes on in its client's request: they add no call.
_IN_REQUEST = frozenset({Opcode.STEP_RUN, Opcode.STEP, Opcode.RUN_COMPLETE}) | DEFER_OPS
_METHOD = re.compile(r"^[A-Z][A-Z0-9-]{0,15}$")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._~-]+")


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_endpoint", message)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """The ``inngest/http.request`` event's data, checked: the request that started the run."""

    domain: str  # scheme://host[:port]
    path: str
    method: str
    query: str
    body: str
    content_type: str
    fn: str

    @classmethod
    def parse(cls, data: Any) -> HttpRequest:
        if not isinstance(data, dict):
            raise invalid("event.data must be an object")
        fields: dict[str, str] = {}
        for name in ("domain", "path", "method", "query_params", "body", "content_type", "fn"):
            value = data.get(name, "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise invalid(f"event.data.{name} must be a string")
            fields[name] = value
        domain = fields["domain"].rstrip("/")
        try:
            parts = urlsplit(domain)
        except ValueError:
            raise invalid(f"event.data.domain is not a URL: {domain!r}") from None
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise invalid(f"event.data.domain must be scheme://host[:port], not {domain!r}")
        path = fields["path"] or "/"
        if not path.startswith("/") or any(c in path for c in "?#\r\n "):
            raise invalid(f"event.data.path must be an absolute path, not {path!r}")
        method = fields["method"].upper()
        if not _METHOD.match(method):
            raise invalid(f"event.data.method is not an HTTP method: {fields['method']!r}")
        query = fields["query_params"].removeprefix("?")
        if any(c in query for c in "#\r\n "):
            raise invalid("event.data.query_params is not a query string")
        if any(c in fields["content_type"] for c in "\r\n"):
            raise invalid("event.data.content_type is not a header value")
        return cls(
            domain=f"{parts.scheme}://{parts.netloc.lower()}",
            path=path,
            method=method,
            query=query,
            body=fields["body"],
            content_type=fields["content_type"],
            fn=fields["fn"],
        )

    @property
    def app_name(self) -> str:
        return urlsplit(self.domain).netloc

    @property
    def function_name(self) -> str:
        return self.fn or f"{self.method} {self.path}"

    @property
    def slug(self) -> str:
        """A function id that is safe in URL paths (the REST API and dashboard link by it)."""
        fn = self.fn or f"{self.method.lower()}{self.path}"
        return f"{self.app_name}-{_SLUG_UNSAFE.sub('-', fn).strip('-') or 'root'}"

    @property
    def url(self) -> str:
        """Where the server re-enters the run: the handler's URL with the original query."""
        return f"{self.domain}{self.path}" + (f"?{self.query}" if self.query else "")


def is_endpoint_app(app: AppRecord) -> bool:
    return app.framework == FRAMEWORK


def is_endpoint(spec: FunctionSpec) -> bool:
    driver = spec.record.config.get("driver")
    return isinstance(driver, dict) and driver.get("type") == DRIVER


def endpoint_spec(
    endpoint: EndpointRecord, spec: FunctionSpec | None, run: RunRecord
) -> FunctionSpec:
    """The function a re-entry runs as: the registry's (or, on a node that has not loaded
    it yet, one made from the run), with the run's own retry budget."""
    if spec is None:
        record = FunctionRecord(
            id=run.function_id,
            app_id="",
            slug=run.function_slug,
            name=run.function_slug,
            config={"id": run.function_slug, "driver": {"type": DRIVER}},
            url=endpoint.url,
            created_at=endpoint.created_at,
        )
        spec = spec_from_record(record)
    return dataclasses.replace(spec, max_attempts=endpoint.retries + 1)


def plan_start(
    executor: Executor,
    *,
    run_id: str,
    event: dict[str, Any],
    ops: list[GeneratorOp],
    retries: int,
    request_version: int,
    now: int,
    body_bytes: int,
    signal_owners: dict[str, Pause],
    sdk: str = "",
) -> EndpointStart:
    """What ``POST /v1/checkpoint`` writes: the run, its app and function as needed, and
    its first ops. Raises ``ApiError`` for what cannot be stored."""
    if event.get("name", HTTP_REQUEST) != HTTP_REQUEST:
        raise invalid(f"event.name must be {HTTP_REQUEST!r}")
    request = HttpRequest.parse(event.get("data"))
    if not 0 <= retries <= MAX_RETRIES:
        raise invalid(f"retries must be between 0 and {MAX_RETRIES}")
    app = AppRecord(
        id=str(uuid.uuid4()),
        name=request.app_name,
        url=request.domain,
        sdk=sdk,
        framework=FRAMEWORK,
        checksum="",
        created_at=now,
        updated_at=now,
    )
    function = FunctionRecord(
        id=str(uuid.uuid4()),
        app_id=app.id,
        slug=request.slug,
        name=request.function_name,
        config={
            "id": request.slug,
            "name": request.function_name,
            "triggers": [],
            "steps": {
                "step": {
                    "id": "step",
                    "name": "step",
                    "runtime": {"type": "http", "url": f"{request.domain}{request.path}"},
                    "retries": {"attempts": retries},
                }
            },
            "driver": {"type": DRIVER, "method": request.method},
        },
        url=f"{request.domain}{request.path}",
        created_at=now,
    )
    internal_id = new_ulid(now)
    data = event.get("data")
    assert isinstance(data, dict)
    stored_event = EventRecord(
        internal_id=internal_id,
        id=internal_id,
        name=HTTP_REQUEST,
        data=data,
        user={},
        ts=now,
        v=None,
        received_at=now,
    )
    run = NewRun(
        id=run_id,
        function_id=function.id,
        function_slug=function.slug,
        event_ids=(internal_id,),
        idempotency_key=run_id,
        created_at=now,
        started_at=now,
    )
    endpoint = EndpointRecord(
        run_id=run_id,
        method=request.method,
        url=request.url,
        content_type=request.content_type,
        retries=retries,
        token=secrets.token_urlsafe(32),
        stream_token=f"{run_id}.{secrets.token_urlsafe(32)}",
        created_at=now,
    )
    state = running_state(run, stored_event, request_version)
    record = state.run
    spec = endpoint_spec(endpoint, spec_from_record(function), record)
    first = checkpoint_transition(executor, state, spec, ops, now, body_bytes, signal_owners)
    update = first.run_update or RunUpdate()
    first = dataclasses.replace(
        first, run_update=dataclasses.replace(update, request_version=request_version)
    )
    return EndpointStart(app, function, stored_event, run, endpoint, first)


def running_state(run: NewRun, event: EventRecord, request_version: int) -> RunState:
    """A new endpoint run's state as its first checkpoint sees it: running, no steps."""
    return RunState(
        run=RunRecord(
            id=run.id,
            function_id=run.function_id,
            function_slug=run.function_slug,
            event_ids=run.event_ids,
            status=RunStatus.RUNNING,
            created_at=run.created_at,
            started_at=run.started_at,
            ended_at=None,
            output=None,
            error=None,
            request_version=request_version,
            force_step_plan=False,
            cron=None,
        ),
        events=[event],
        steps=[],
    )


def checkpoint_transition(
    executor: Executor,
    state: RunState,
    spec: FunctionSpec,
    ops: list[GeneratorOp],
    now: int,
    body_bytes: int,
    signal_owners: dict[str, Pause],
) -> Transition:
    """A handler's checkpoint as the answer of its call, which has no job.

    Ops are handled as in any call's answer (``Executor.apply_ops``), with two
    differences. While the handler goes on in its request (only step results, defers and
    the run's completion), nothing calls it: no discovery follows. And a retriable error
    cannot retry a job that does not exist: the retry is a new call, the run's attempt 1,
    so the handler's own attempt counts against the run's budget.
    """
    run_id = state.run.id
    call = Job(
        id=NO_JOB,
        run_id=run_id,
        kind=JobKind.CALL,
        step_id="step",
        attempt=0,
        run_at=now,
        lease="",
        key=None,
        payload=None,
    )
    t = executor.apply_ops(call, state, spec, ops, now, body_bytes, signal_owners)
    if all(op.op in _IN_REQUEST for op in ops):
        t = dataclasses.replace(t, continue_with=None, new_jobs=[])
    if t.retry_at is not None:
        retry = NewJob(
            run_id=run_id,
            kind=JobKind.CALL,
            run_at=t.retry_at,
            attempt=1,
            key=f"endpoint-retry:{run_id}",
        )
        t = dataclasses.replace(t, retry_at=None, new_jobs=[*t.new_jobs, retry])
    return t


def request_body(state: RunState) -> str:
    """The body of the request that started the run, which a re-entry sends again."""
    data = state.events[0].data if state.events else {}
    body = data.get("body")
    return body if isinstance(body, str) else ""
