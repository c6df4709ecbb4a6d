"""The dashboard's Runs page and a run's page over 100,000 stored runs: time to load each.

1. Creates a store, SQLite then PostgreSQL (a database of its own on ``--postgres``,
   dropped afterwards), with the server's own migrations and ``sync_app``, then writes
   N events and N runs straight into its tables (one transaction; COPY on PostgreSQL) (completed, failed,
   cancelled, skipped, sleeping and waiting runs of four functions over the past week),
   with each sleeping run's wake-up job and each waiting run's pause, as the server
   would have stored them. No app runs: nothing is executed.
2. Starts ``stepwise dev`` on that store.
3. Loads, ``--samples`` times each: ``/runs`` (the first page), a filtered page (one
   status and one function), a CEL search that matches rarely (so it scans its whole
   bound of 2,000 runs), ``/v1/runs`` with the same search, and ``/runs/{id}`` of random
   runs; prints p50/p95 in ms and writes them to bench/results/.

    python bench/dashboard.py --runs 100000 --samples 200 [--backend sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from _stack import free_port, wait_for

from stepwise.protocol.ids import encode_ulid
from stepwise.server.store.base import Store
from stepwise.server.store.postgres.store import PostgresStore
from stepwise.server.store.records import AppRecord, FunctionRecord
from stepwise.server.store.sqlite.store import SqliteStore

HERE = Path(__file__).resolve().parent
DAY_MS = 86_400_000
FUNCTIONS = ("checkout", "refund", "newsletter", "nightly")
# status, share of the runs
MIX = (
    ("Completed", 0.80),
    ("Failed", 0.08),
    ("Cancelled", 0.04),
    ("Skipped", 0.04),
    ("Sleeping", 0.02),
    ("Waiting", 0.02),
)
SEARCH = 'event.data.customer == "acme" && output.total > 990'


async def create_store(store: Store, now: int) -> list[FunctionRecord]:
    """Migrate the store (opening it does) and sync one app of four functions."""
    await store.open()
    app = AppRecord(
        "app-bench", "shop", "http://127.0.0.1:9/api", "py:v0.5", "starlette", "c", now, now
    )
    functions = [
        FunctionRecord(
            id=f"fn-{name}",
            app_id=app.id,
            slug=f"shop-{name}",
            name=name,
            config={"id": f"shop-{name}", "name": name, "triggers": [{"event": f"shop/{name}"}]},
            url=f"{app.url}?fnId=shop-{name}&stepId=step",
            created_at=now,
        )
        for name in FUNCTIONS
    ]
    await store.sync_app(app, functions, [])
    await store.close()
    return functions


Tables = dict[str, tuple[str, list[tuple[Any, ...]]]]


def make_rows(functions: list[FunctionRecord], runs: int, now: int) -> tuple[list[str], Tables]:
    """N events and runs, newest a second ago, oldest a week ago: their run ids, and the
    rows to write by table (its columns, its rows)."""
    rng = random.Random(7)
    statuses = rng.choices([s for s, _ in MIX], weights=[w for _, w in MIX], k=runs)
    ids = []
    events, rows, jobs, pauses = [], [], [], []
    for n, shown in enumerate(statuses):
        created = now - 1000 - (runs - n) * (7 * DAY_MS // runs)
        fn = functions[n % len(functions)]
        event_id = encode_ulid(created, rng.randbytes(10))
        run_id = encode_ulid(created, rng.randbytes(10))
        ids.append(run_id)
        customer = rng.choice(("acme", "globex", "initech", "umbrella", "hooli"))
        data = {"customer": customer, "order": n, "items": rng.randint(1, 9)}
        events.append(
            (
                event_id,
                event_id,
                f"shop/{fn.name}",
                orjson.dumps(data),
                b"{}",
                created,
                None,
                created,
                0,
            )
        )
        status = "Running" if shown in ("Sleeping", "Waiting") else shown
        ended = None if status == "Running" else created + rng.randint(5, 2000)
        output = orjson.dumps({"total": rng.randint(1, 1000)}) if status == "Completed" else None
        error = (
            orjson.dumps({"name": "Error", "message": "card declined"})
            if status == "Failed"
            else None
        )
        skip = "rate_limited" if status == "Skipped" else None
        rows.append(
            (
                run_id,
                fn.id,
                fn.slug,
                event_id,
                orjson.dumps([event_id]),
                status,
                created,
                None if status == "Skipped" else created + 2,
                ended,
                output,
                error,
                skip,
            )
        )
        if shown == "Sleeping":
            jobs.append((run_id, "wake", "nap", 0, now + DAY_MS))
        if shown == "Waiting":
            pauses.append(
                (f"wait:{run_id}", run_id, "paid", "wait", "shop/paid", now, now + DAY_MS)
            )
    tables: Tables = {
        "events": ('internal_id, id, name, data, "user", ts, v, received_at, copy', events),
        "runs": (
            "id, function_id, function_slug, event_id, event_ids, status, created_at,"
            " started_at, ended_at, output, error, skip_reason",
            rows,
        ),
        "jobs": ("run_id, kind, step_id, attempt, run_at", jobs),
        "pauses": ("key, run_id, step_id, kind, event_name, created_at, expires_at", pauses),
    }
    return ids, tables


def fill_sqlite(path: Path, tables: Tables) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for table, (columns, rows) in tables.items():
            marks = ", ".join("?" * len(columns.split(",")))
            conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
    conn.execute("ANALYZE")
    conn.close()


def fill_postgres(uri: str, tables: Tables) -> None:
    with psycopg.connect(uri) as conn:
        for table, (columns, rows) in tables.items():
            with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")


def timed(http: httpx.Client, path: str, samples: int, expect: str) -> dict[str, float]:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        response = http.get(path)
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
        assert expect in response.text, (path, response.text[:500])
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
        "max_ms": round(times[-1], 1),
    }


def measure(
    name: str, url: str, run_ids: list[str], samples: int, rng: random.Random
) -> dict[str, Any]:
    http = httpx.Client(base_url=url, timeout=60)
    wait_for(lambda: http.get("/health").status_code == 200, 60, "server")
    search = str(httpx.QueryParams({"q": SEARCH}))
    pages = {
        "runs_first_page": ("/runs", "Older runs"),
        "runs_filtered": ("/runs?status=Failed&function=shop-refund", "shop-refund"),
        "runs_cel_search": ("/runs?" + search, "search-summary"),
        "api_cel_search": ("/v1/runs?limit=50&" + search, "scanned"),
    }
    result: dict[str, Any] = {}
    for page, (path, expect) in pages.items():
        timed(http, path, 5, expect)  # warm the caches a person's second visit has
        result[page] = timed(http, path, samples, expect)
        print(f"  {name:<8} {page:<18} {result[page]}", flush=True)
    details = []
    for _ in range(samples):
        run_id = rng.choice(run_ids)
        page = timed(http, f"/runs/{run_id}", 1, f'<code id="run-id">{run_id}</code>')
        details.append(page["p50_ms"])
    details.sort()
    result["run_detail"] = {
        "p50_ms": round(statistics.median(details), 1),
        "p95_ms": round(details[int(0.95 * (len(details) - 1))], 1),
        "max_ms": round(details[-1], 1),
    }
    print(f"  {name:<8} {'run_detail':<18} {result['run_detail']}", flush=True)
    http.close()
    return result


@contextmanager
def dev_server(workdir: Path, store_args: list[str]) -> Iterator[str]:
    port = free_port()
    log = open(workdir / "server.log", "ab")  # noqa: SIM115 - owned by the child
    command = [sys.executable, "-m", "stepwise", "dev", "-p", str(port), *store_args]
    server = subprocess.Popen(
        [*command, "--no-poll", "--log-level", "warning"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    now = int(time.time() * 1000)
    rng = random.Random(11)
    start = time.perf_counter()
    if backend == "sqlite":
        db = workdir / "dashboard.db"
        functions = asyncio.run(create_store(SqliteStore(str(db)), now))
        run_ids, tables = make_rows(functions, args.runs, now)
        fill_sqlite(db, tables)
        fill_s = time.perf_counter() - start
        print(f"{backend}: {args.runs} runs stored in {fill_s:.1f}s", flush=True)
        with dev_server(workdir, ["--sqlite-path", str(db)]) as url:
            return {"fill_s": round(fill_s, 1), **measure(backend, url, run_ids, args.samples, rng)}
    name = f"stepwise_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.postgres, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    uri = args.postgres.rsplit("/", 1)[0] + "/" + name
    try:
        functions = asyncio.run(create_store(PostgresStore(uri), now))
        run_ids, tables = make_rows(functions, args.runs, now)
        fill_postgres(uri, tables)
        fill_s = time.perf_counter() - start
        print(f"{backend}: {args.runs} runs stored in {fill_s:.1f}s", flush=True)
        with dev_server(workdir, ["--postgres-uri", uri]) as url:
            return {"fill_s": round(fill_s, 1), **measure(backend, url, run_ids, args.samples, rng)}
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--backend", action="append", choices=("sqlite", "postgres"), help="default: both"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="an administrative URI; the benchmark creates and drops its own database",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    load_before = os.getloadavg()
    result: dict[str, Any] = {"runs": args.runs, "samples": args.samples}
    with tempfile.TemporaryDirectory(prefix="stepwise-bench-dashboard-") as tmp:
        for backend in args.backend or ("sqlite", "postgres"):
            result[backend] = run_backend(backend, args, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"dashboard-{stamp}.json"
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "search": SEARCH,
    }
    path.write_text(
        json.dumps(
            {"benchmark": "dashboard", "at": stamp, "meta": meta, "result": result}, indent=2
        )
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
