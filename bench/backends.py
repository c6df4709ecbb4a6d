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
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from _stack import POSTGRES_ADMIN, cluster, fresh_store, percentile, run_times, send_events

HERE = Path(__file__).resolve().parent
APP = HERE / "apps" / "stepwise_three.py"
SCENARIOS = ["sqlite", "pg-1", "pg-2", "pg-3"]


def measure(clients: list[httpx.Client], events: int, batch: int, query: Any) -> dict[str, Any]:
    sent = send_events(clients, events, batch, "bench/three")
    rows = run_times(query, events, 900)
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


def run_scenario(args: argparse.Namespace, workdir: Path, scenario: str) -> dict[str, Any]:
    backend = "sqlite" if scenario == "sqlite" else "postgres"
    nodes = 1 if scenario == "sqlite" else int(scenario.split("-")[1])
    with (
        fresh_store(backend, workdir, scenario, args.postgres) as store,
        cluster(workdir, scenario, store.args, nodes, args.workers, app=APP) as clients,
    ):
        return measure(clients, args.events, args.batch, store.query)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100, help="events per POST /e request")
    parser.add_argument("--workers", type=int, default=100, help="--queue-workers of each node")
    parser.add_argument(
        "--postgres",
        default=POSTGRES_ADMIN,
        help="an administrative URI; each scenario creates and drops its own database",
    )
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="stepwise-bench-") as tmp:
        for scenario in args.scenario or SCENARIOS:
            print(f"running {scenario} with {args.events} events ...", flush=True)
            result = run_scenario(args, Path(tmp), scenario)
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
