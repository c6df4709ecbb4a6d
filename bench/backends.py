"""The 3-step benchmark on each production backend, side by side in one run.

N events, each starting a 3-step function, run to completion on `stepwise start`:

* ``sqlite``  — one node on a SQLite file (synchronous=FULL, the production setting);
* ``pg-1``, ``pg-2``, ``pg-3`` — one, two and three nodes sharing one PostgreSQL database
  (a fresh database per scenario on ``--postgres``), events spread round-robin over the
  nodes, the app synced through the first node only (the others learn it from the database).

All nodes and the app share this machine's cores, so more nodes cannot mean more runs/s
here; what the multi-node rows show is whether the nodes slow each other down (lock
contention). Reports runs/s and p50/p99 event-to-end latency from the server's own
records, prints a table and writes JSON to bench/results/.

    python bench/backends.py --events 3000
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _stack import free_port, wait_for

HERE = Path(__file__).resolve().parent
APP = HERE / "apps" / "stepwise_three.py"
SIGNING_KEY = "signkey-prod-" + "ab" * 32
EVENT_KEY = "bench-event-key"
SCENARIOS = ["sqlite", "pg-1", "pg-2", "pg-3"]

FINISHED_SQL = "SELECT count(*) FROM runs WHERE status IN ('Completed','Failed')"
TIMES_SQL = (
    "SELECT r.status, e.received_at, r.ended_at FROM runs r"
    " JOIN events e ON e.internal_id = r.event_id"
)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


@contextmanager
def cluster(
    workdir: Path, name: str, backend_args: list[str], nodes: int, workers: int
) -> Iterator[list[httpx.Client]]:
    """``nodes`` servers on one database and the benchmark app, synced through the first."""
    ports = [free_port() for _ in range(nodes)]
    app_port = free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")},
        "PORT": str(app_port),
        "INNGEST_SIGNING_KEY": SIGNING_KEY,
        "INNGEST_BASE_URL": urls[0],
        "PYTHONUNBUFFERED": "1",
    }
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    clients = [
        httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {SIGNING_KEY}"})
        for url in urls
    ]
    try:
        for i, port in enumerate(ports):
            log = open(workdir / f"{name}-node{i}.log", "wb")  # noqa: SIM115 - owned by the child
            logs.append(log)
            command = [
                sys.executable, "-m", "stepwise", "start", "--port", str(port),
                "--signing-key", SIGNING_KEY, "--event-key", EVENT_KEY,
                "--no-poll", "--queue-workers", str(workers), "--log-level", "warning",
                *backend_args,
            ]  # fmt: skip
            if i == 0:
                command += ["-u", f"http://127.0.0.1:{app_port}/api/inngest"]
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            # Nodes start one after another: the first one migrates the database.
            wait_for(lambda c=clients[i]: c.get("/health").status_code == 200, 60, f"node {i}")
        app_log = open(workdir / f"{name}-app.log", "wb")  # noqa: SIM115 - owned by the child
        logs.append(app_log)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(APP)], env=env, stdout=app_log, stderr=subprocess.STDOUT
            )
        )
        for i, client in enumerate(clients):
            wait_for(
                lambda c=client: c.get("/v1/apps/bench/functions").json().get("data"),
                60,
                f"node {i} to know the app",
            )
        yield clients
    finally:
        for client in clients:
            client.close()
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        for log in logs:
            log.close()


def measure(
    clients: list[httpx.Client], events: int, batch: int, query: Callable[[str], list[Any]]
) -> dict[str, Any]:
    turn = itertools.cycle(clients)
    started = time.perf_counter()
    for offset in range(0, events, batch):
        body = [
            {"name": "bench/three", "data": {"i": i}}
            for i in range(offset, min(events, offset + batch))
        ]
        next(turn).post(f"/e/{EVENT_KEY}", json=body).raise_for_status()
    sent = time.perf_counter() - started
    wait_for(lambda: query(FINISHED_SQL)[0][0] >= events, 900, "all runs to finish")
    rows = query(TIMES_SQL)
    completed = [r for r in rows if r[0] == "Completed"]
    latencies = [ended - received for _, received, ended in completed]
    wall_s = (max(r[2] for r in rows) - min(r[1] for r in rows)) / 1000
    return {
        "events": events,
        "completed": len(completed),
        "failed": len(rows) - len(completed),
        "runs_per_s": round(len(completed) / wall_s, 1) if wall_s else None,
        "steps_per_s": round(3 * len(completed) / wall_s, 1) if wall_s else None,
        "ingest_events_per_s": round(events / sent, 1),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "wall_s": round(wall_s, 2),
    }


def run_sqlite(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    db = workdir / "bench.db"
    with cluster(workdir, "sqlite", ["--sqlite-path", str(db)], 1, args.workers) as clients:

        def query(sql: str) -> list[Any]:
            with sqlite3.connect(db) as reader:
                return reader.execute(sql).fetchall()

        return measure(clients, args.events, args.batch, query)


def run_postgres(args: argparse.Namespace, workdir: Path, nodes: int) -> dict[str, Any]:
    name = f"stepwise_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.postgres, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    uri = args.postgres.rsplit("/", 1)[0] + "/" + name
    try:
        with cluster(workdir, f"pg{nodes}", ["--postgres-uri", uri], nodes, args.workers) as cl:

            def query(sql: str) -> list[Any]:
                with psycopg.connect(uri) as conn:
                    return conn.execute(sql).fetchall()

            return measure(cl, args.events, args.batch, query)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100, help="events per POST /e request")
    parser.add_argument("--workers", type=int, default=100, help="--queue-workers of each node")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="an administrative URI; each scenario creates and drops its own database",
    )
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="stepwise-bench-") as tmp:
        for scenario in args.scenario or SCENARIOS:
            print(f"running {scenario} with {args.events} events ...", flush=True)
            workdir = Path(tmp)
            if scenario == "sqlite":
                result = run_sqlite(args, workdir)
            else:
                result = run_postgres(args, workdir, int(scenario.split("-")[1]))
            results.append({"scenario": scenario, **result})
    base = {r["scenario"]: r["runs_per_s"] for r in results}
    header = (
        f"{'scenario':<10}{'runs/s':>9}{'vs sqlite':>11}{'vs pg-1':>9}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}{'ingest ev/s':>13}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        rate = r["runs_per_s"] or 0
        vs_sqlite = f"{rate / base['sqlite']:.2f}" if base.get("sqlite") else "-"
        vs_pg1 = f"{rate / base['pg-1']:.2f}" if base.get("pg-1") else "-"
        r["vs_sqlite"], r["vs_pg1"] = vs_sqlite, vs_pg1
        print(
            f"{r['scenario']:<10}{rate:>9}{vs_sqlite:>11}{vs_pg1:>9}{r['p50_ms']:>9}"
            f"{r['p99_ms']:>9}{r['failed']:>8}{r['ingest_events_per_s']:>13}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"backends-{stamp}.json"
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "storage": "sqlite synchronous=FULL; postgresql synchronous_commit=on",
    }
    args_out = {"events": args.events, "batch": args.batch, "workers": args.workers}
    report = {"benchmark": "backends", "at": stamp, "meta": meta, "args": args_out}
    path.write_text(json.dumps({**report, "results": results}, indent=2))
    print(f"\nwrote {path}")
    return 0 if all(r["failed"] == 0 and r["completed"] == r["events"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
