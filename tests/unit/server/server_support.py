"""Hand-built records for the engine's unit tests: no store, no sockets."""

from __future__ import annotations

import json
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from stepwise.protocol.ids import encode_ulid
from stepwise.server.engine.driver import Driver, SdkReply
from stepwise.server.engine.executor import Executor
from stepwise.server.engine.registry import FunctionSpec, Registry, spec_from_record
from stepwise.server.engine.scheduler import Scheduler
from stepwise.server.store.records import (
    EventRecord,
    FunctionRecord,
    Job,
    JobKind,
    RunRecord,
    RunState,
    RunStatus,
    StepMemo,
)

# 2023-11-14T22:13:20Z
NOW = 1_700_000_000_000
RUN_ID = encode_ulid(NOW - 5_000, b"\x01" * 10)
EVENT_INTERNAL_ID = encode_ulid(NOW - 6_000, b"\x02" * 10)
APP_URL = "http://127.0.0.1:9/api/inngest"
SDK_HEADER = {"X-Inngest-SDK": "inngest-py:v0.5.18"}


def function_record(
    slug: str = "app-fn",
    *,
    triggers: list[dict[str, Any]] | None = None,
    retries: int | None = 2,
    fn_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> FunctionRecord:
    step: dict[str, Any] = {"id": "step", "runtime": {"url": f"{APP_URL}?fnId={slug}"}}
    if retries is not None:
        step["retries"] = {"attempts": retries}
    config: dict[str, Any] = {
        "id": slug,
        "name": slug,
        "triggers": triggers if triggers is not None else [{"event": "app/user.created"}],
        "steps": {"step": step},
        **(extra or {}),
    }
    return FunctionRecord(
        id=fn_id or f"uuid-{slug}",
        app_id="app-uuid",
        slug=slug,
        name=slug,
        config=config,
        url=f"{APP_URL}?fnId={slug}",
        created_at=0,
    )


def registry_of(*records: FunctionRecord) -> Registry:
    registry = Registry()
    registry.replace_all(list(records))
    return registry


def unused_driver() -> Driver:
    """A real driver that the tests never call (its HTTP session is created lazily)."""
    return Driver(signing_key=None, server_kind="dev", timeout_s=5.0, max_connections=1)


def make_executor(
    *records: FunctionRecord, retry_interval_s: float | None = None
) -> tuple[Executor, Registry]:
    registry = registry_of(*(records or (function_record(),)))
    executor = Executor(
        registry=registry,
        scheduler=Scheduler(registry),
        driver=unused_driver(),
        retry_interval_s=retry_interval_s,
    )
    return executor, registry


def spec(record: FunctionRecord | None = None) -> FunctionSpec:
    return spec_from_record(record or function_record())


def event(
    name: str = "app/user.created",
    data: dict[str, Any] | None = None,
    *,
    internal_id: str = EVENT_INTERNAL_ID,
    event_id: str = "user-evt-1",
    ts: int = NOW - 6_000,
    v: str | None = None,
) -> EventRecord:
    return EventRecord(
        internal_id=internal_id,
        id=event_id,
        name=name,
        data=data if data is not None else {"user_id": 42},
        user={},
        ts=ts,
        v=v,
        received_at=ts,
    )


def run_record(
    *,
    status: RunStatus = RunStatus.RUNNING,
    request_version: int = 2,
    force_step_plan: bool = False,
    slug: str = "app-fn",
) -> RunRecord:
    return RunRecord(
        id=RUN_ID,
        function_id=f"uuid-{slug}",
        function_slug=slug,
        event_ids=(EVENT_INTERNAL_ID,),
        status=status,
        created_at=NOW - 5_000,
        started_at=None if status is RunStatus.SCHEDULED else NOW - 4_000,
        ended_at=None,
        output=None,
        error=None,
        request_version=request_version,
        force_step_plan=force_step_plan,
        cron=None,
    )


def run_state(
    *,
    events: list[EventRecord] | None = None,
    steps: list[StepMemo] | None = None,
    **run_fields: Any,
) -> RunState:
    return RunState(
        run=run_record(**run_fields),
        events=events if events is not None else [event()],
        steps=steps or [],
    )


def job(
    *,
    kind: JobKind = JobKind.CALL,
    step_id: str = "step",
    attempt: int = 0,
    run_id: str | None = RUN_ID,
    run_at: int = NOW,
    payload: dict[str, Any] | None = None,
) -> Job:
    return Job(
        id=7,
        run_id=run_id,
        kind=kind,
        step_id=step_id,
        attempt=attempt,
        run_at=run_at,
        lease="lease-7",
        key=None,
        payload=payload,
    )


def reply(
    status: int,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    sdk: bool = True,
    raw: bytes | None = None,
    transport_error: str | None = None,
) -> SdkReply:
    all_headers = {**(SDK_HEADER if sdk else {}), **(headers or {})}
    if raw is None:
        raw = b"" if body is None else json.dumps(body).encode()
    return SdkReply(
        status=status,
        headers=CIMultiDictProxy(CIMultiDict(all_headers)),
        body=body,
        raw=raw,
        transport_error=transport_error,
    )
