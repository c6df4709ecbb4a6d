"""Rows to records and back: column lists, JSON payloads as bytes, rows read by name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from ..records import (
    AppRecord,
    CancellationRecord,
    EventRecord,
    FunctionRecord,
    HistoryEntry,
    HistoryKind,
    Job,
    JobKind,
    Pause,
    PauseKind,
    RunRecord,
    RunStatus,
)


def dump(value: Any) -> bytes:
    return orjson.dumps(value)


def dump_text(value: Any) -> str:
    """JSON for the columns declared as text (a run's limits, a batch's event ids)."""
    return orjson.dumps(value).decode()


def load(blob: bytes | memoryview | str | None) -> Any:
    if blob is None:
        return None
    return orjson.loads(blob)


# Statuses of a run that has not ended.
ACTIVE = (RunStatus.SCHEDULED.value, RunStatus.RUNNING.value)


def marks(n: int) -> str:
    """``n`` placeholders, comma separated, for an ``IN (...)`` list."""
    return ",".join("?" * n)


def chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


RUN_COLUMNS = (
    "id, function_id, function_slug, event_ids, status, created_at, started_at, ended_at,"
    " output, error, request_version, force_step_plan, cron, correlation_id,"
    " skip_reason, original_run_id"
)
EVENT_COLUMNS = 'internal_id, id, name, data, "user", ts, v, received_at, copy, meta'
PAUSE_COLUMNS = (
    "id, key, run_id, kind, created_at, step_id, event_name, expression, signal, expires_at, data"
)
CANCELLATION_COLUMNS = (
    "id, app_id, function_slug, started_before, created_at, started_after, expression"
)
JOB_COLUMNS = "id, run_id, kind, step_id, attempt, run_at, lease, key, payload, generation, faults"
APP_COLUMNS = "id, name, url, sdk, framework, checksum, created_at, updated_at"
FUNCTION_COLUMNS = "id, app_id, slug, name, config, url, created_at"
HISTORY_COLUMNS = "kind, at, step_id, name, attempt, data"


def run_from_row(row: Any) -> RunRecord:
    return RunRecord(
        id=row["id"],
        function_id=row["function_id"],
        function_slug=row["function_slug"],
        event_ids=tuple(load(row["event_ids"])),
        status=RunStatus(row["status"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        output=load(row["output"]),
        error=load(row["error"]),
        request_version=row["request_version"],
        force_step_plan=bool(row["force_step_plan"]),
        cron=row["cron"],
        correlation_id=row["correlation_id"],
        skip_reason=row["skip_reason"],
        original_run_id=row["original_run_id"],
    )


def event_from_row(row: Any) -> EventRecord:
    return EventRecord(
        internal_id=row["internal_id"],
        id=row["id"],
        name=row["name"],
        data=load(row["data"]),
        user=load(row["user"]),
        ts=row["ts"],
        v=row["v"],
        received_at=row["received_at"],
        copy=row["copy"],
        meta=load(row["meta"]),
    )


def event_to_row(e: EventRecord, copy: int) -> tuple[Any, ...]:
    """Parameters in ``EVENT_COLUMNS`` order."""
    meta = None if e.meta is None else dump(e.meta)
    return (
        e.internal_id,
        e.id,
        e.name,
        dump(e.data),
        dump(e.user),
        e.ts,
        e.v,
        e.received_at,
        copy,
        meta,
    )


def pause_from_row(row: Any) -> Pause:
    return Pause(
        id=row["id"],
        key=row["key"],
        run_id=row["run_id"],
        kind=PauseKind(row["kind"]),
        created_at=row["created_at"],
        step_id=row["step_id"],
        event_name=row["event_name"],
        expression=row["expression"],
        signal=row["signal"],
        expires_at=row["expires_at"],
        data=load(row["data"]),
    )


def cancellation_from_row(row: Any) -> CancellationRecord:
    return CancellationRecord(
        id=row["id"],
        app_id=row["app_id"],
        function_slug=row["function_slug"],
        started_before=row["started_before"],
        created_at=row["created_at"],
        started_after=row["started_after"],
        expression=row["expression"],
    )


def job_from_row(row: Any) -> Job:
    return Job(
        id=row["id"],
        run_id=row["run_id"],
        kind=JobKind(row["kind"]),
        step_id=row["step_id"],
        attempt=row["attempt"],
        run_at=row["run_at"],
        lease=row["lease"] or "",
        key=row["key"],
        payload=load(row["payload"]),
        generation=row["generation"],
        faults=row["faults"],
    )


def app_from_row(row: Any) -> AppRecord:
    return AppRecord(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        sdk=row["sdk"],
        framework=row["framework"],
        checksum=row["checksum"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def function_from_row(row: Any) -> FunctionRecord:
    return FunctionRecord(
        id=row["id"],
        app_id=row["app_id"],
        slug=row["slug"],
        name=row["name"],
        config=load(row["config"]),
        url=row["url"],
        created_at=row["created_at"],
    )


def history_from_row(row: Any) -> HistoryEntry:
    return HistoryEntry(
        kind=HistoryKind(row["kind"]),
        at=row["at"],
        step_id=row["step_id"],
        name=row["name"],
        attempt=row["attempt"],
        data=load(row["data"]),
    )
