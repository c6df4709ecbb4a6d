"""Reads for a page of runs at once: what each run holds open, and its triggering events.

A list page shows up to a hundred runs; each read here is one query for all of them, so
a page costs the same few queries however many runs it shows.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..records import EventRecord, JobKind, OpenWork, PauseKind
from .conn import Conn
from .rows import EVENT_COLUMNS, event_from_row, marks


def open_work(conn: Conn, run_ids: Sequence[str], now: int) -> dict[str, OpenWork]:
    """Each run's job and pause kinds, and whether a job of it is leased at ``now``; a run
    that holds neither jobs nor pauses is left out."""
    if not run_ids:
        return {}
    ids = list(dict.fromkeys(run_ids))
    rows = conn.execute(
        # A leased job's run_at is its lease's expiry: past it, the job is due again.
        "SELECT DISTINCT run_id, 'job' AS source, kind,"
        " CASE WHEN lease IS NOT NULL AND run_at > ? THEN 1 ELSE 0 END AS in_flight"
        f" FROM jobs WHERE run_id IN ({marks(len(ids))})"
        f" UNION ALL SELECT DISTINCT run_id, 'pause' AS source, kind, 0 AS in_flight FROM pauses"
        f" WHERE run_id IN ({marks(len(ids))})",
        [now, *ids, *ids],
    ).fetchall()
    jobs: dict[str, set[JobKind]] = {}
    pauses: dict[str, set[PauseKind]] = {}
    in_flight: set[str] = set()
    for row in rows:
        if row["source"] == "job":
            jobs.setdefault(row["run_id"], set()).add(JobKind(row["kind"]))
            if row["in_flight"]:
                in_flight.add(row["run_id"])
        else:
            pauses.setdefault(row["run_id"], set()).add(PauseKind(row["kind"]))
    return {
        run_id: OpenWork(
            jobs=frozenset(jobs.get(run_id, ())),
            pauses=frozenset(pauses.get(run_id, ())),
            in_flight=run_id in in_flight,
        )
        for run_id in (*jobs, *pauses)
    }


def events_by_id(conn: Conn, internal_ids: Sequence[str]) -> dict[str, EventRecord]:
    """The first copy of each event with one of these internal ids (unknown ids left out)."""
    if not internal_ids:
        return {}
    ids = list(dict.fromkeys(internal_ids))
    rows = conn.execute(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE copy = 0 AND internal_id IN ({marks(len(ids))})",
        ids,
    ).fetchall()
    return {row["internal_id"]: event_from_row(row) for row in rows}
