"""Rows to records and back, and the reads that assemble a run's state (SQLite)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson

from ..records import (
    CancellationRecord,
    EventRecord,
    Job,
    JobKind,
    Pause,
    PauseKind,
    RunRecord,
    RunState,
    RunStatus,
    StepMemo,
)


def dump(value: Any) -> bytes:
    return orjson.dumps(value)


def load(blob: bytes | str | None) -> Any:
    if blob is None:
        return None
    return orjson.loads(blob)


RUN_COLUMNS = (
    "id, function_id, function_slug, event_ids, status, created_at, started_at, ended_at,"
    " output, error, request_version, force_step_plan, cron, correlation_id,"
    " skip_reason"
)


EVENT_COLUMNS = "internal_id, id, name, data, user, ts, v, received_at, copy"


PAUSE_COLUMNS = (
    "id, key, run_id, kind, created_at, step_id, event_name, expression, signal, expires_at, data"
)


CANCELLATION_COLUMNS = (
    "id, app_id, function_slug, started_before, created_at, started_after, expression"
)


JOB_COLUMNS = "id, run_id, kind, step_id, attempt, run_at, lease, key, payload, generation, faults"


def run_from_row(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0],
        function_id=row[1],
        function_slug=row[2],
        event_ids=tuple(load(row[3])),
        status=RunStatus(row[4]),
        created_at=row[5],
        started_at=row[6],
        ended_at=row[7],
        output=load(row[8]),
        error=load(row[9]),
        request_version=row[10],
        force_step_plan=bool(row[11]),
        cron=row[12],
        correlation_id=row[13],
        skip_reason=row[14],
    )


def event_from_row(row: tuple[Any, ...]) -> EventRecord:
    return EventRecord(
        internal_id=row[0],
        id=row[1],
        name=row[2],
        data=load(row[3]),
        user=load(row[4]),
        ts=row[5],
        v=row[6],
        received_at=row[7],
        copy=row[8],
    )


def pause_from_row(row: tuple[Any, ...]) -> Pause:
    return Pause(
        id=row[0],
        key=row[1],
        run_id=row[2],
        kind=PauseKind(row[3]),
        created_at=row[4],
        step_id=row[5],
        event_name=row[6],
        expression=row[7],
        signal=row[8],
        expires_at=row[9],
        data=load(row[10]),
    )


def cancellation_from_row(row: tuple[Any, ...]) -> CancellationRecord:
    return CancellationRecord(
        id=row[0],
        app_id=row[1],
        function_slug=row[2],
        started_before=row[3],
        created_at=row[4],
        started_after=row[5],
        expression=row[6],
    )


def job_from_row(row: tuple[Any, ...]) -> Job:
    return Job(
        id=row[0],
        run_id=row[1],
        kind=JobKind(row[2]),
        step_id=row[3],
        attempt=row[4],
        run_at=row[5],
        lease=row[6] or "",
        key=row[7],
        payload=load(row[8]),
        generation=row[9],
        faults=row[10],
    )


def chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_run_states(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, RunState]:
    """Several runs' state in three queries, however many runs."""
    runs: dict[str, RunRecord] = {}
    for chunk in chunks(sorted(set(run_ids))):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id IN ({marks})", chunk):
            runs[row[0]] = run_from_row(row)
    event_ids = sorted({e for run in runs.values() for e in run.event_ids})
    events: dict[str, EventRecord] = {}
    for chunk in chunks(event_ids):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE copy = 0 AND internal_id IN ({marks})",
            chunk,
        ):
            events[row[0]] = event_from_row(row)
    steps: dict[str, list[StepMemo]] = {run_id: [] for run_id in runs}
    sizes: dict[str, int] = dict.fromkeys(runs, 0)
    for chunk in chunks(list(runs)):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT run_id, step_id, seq, memo FROM steps WHERE run_id IN ({marks}) ORDER BY run_id, seq",
            chunk,
        ):
            steps[row[0]].append(StepMemo(step_id=row[1], seq=row[2], memo=load(row[3])))
            sizes[row[0]] += len(row[3])
    return {
        run_id: RunState(
            run=run,
            events=[events[e] for e in run.event_ids if e in events],
            steps=steps[run_id],
            state_bytes=sizes[run_id],
        )
        for run_id, run in runs.items()
    }


def load_run_state(conn: sqlite3.Connection, run_id: str) -> RunState | None:
    return load_run_states(conn, [run_id]).get(run_id)
