"""N events, each starting a 3-step function, run to completion on `stepwise dev` (SQLite).

Each SDK serves the same function to the same server, one after the other, in one run:
the Stepwise SDK and the official Inngest Python SDK. Reports runs/s and the p50/p99
time from an event's arrival to its run's end, prints a table and writes JSON to
bench/results/. Timings come from the server's own records (received_at, ended_at).

    python bench/three_step.py --events 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _stack import bench_stack, percentile, wait_for
from peers.venvs import peer_python

HERE = Path(__file__).resolve().parent
APPS = {
    "stepwise-sdk": HERE / "apps" / "stepwise_three.py",
    "inngest-py-sdk": HERE / "apps" / "inngest_three.py",
}


def run_scenario(sdk: str, events: int, batch: int, workers: int, workdir: Path) -> dict[str, Any]:
    # The official SDK runs in a virtualenv of its own (bench/peers/venvs.py).
    python = str(peer_python("inngest")) if sdk == "inngest-py-sdk" else sys.executable
    with bench_stack(workdir, sdk, APPS[sdk], workers=workers, app_python=python) as stack:
        started = time.perf_counter()
        for offset in range(0, events, batch):
            body = [
                {"name": "bench/three", "data": {"i": i}}
                for i in range(offset, min(events, offset + batch))
            ]
            stack.http.post("/e/bench", json=body).raise_for_status()
        sent = time.perf_counter() - started
        reader = sqlite3.connect(stack.db)

        def finished() -> bool:
            row = reader.execute(
                "SELECT count(*) FROM runs WHERE status IN ('Completed','Failed')"
            ).fetchone()
            return bool(row[0] >= events)

        wait_for(finished, 600, "all runs to finish")
        rows = reader.execute(
            "SELECT r.status, e.received_at, r.ended_at FROM runs r JOIN events e ON e.internal_id = r.event_id"
        ).fetchall()
        reader.close()
    completed = [r for r in rows if r[0] == "Completed"]
    latencies = [(ended - received) for _, received, ended in completed]
    first = min(r[1] for r in rows)
    last = max(r[2] for r in rows)
    wall_s = (last - first) / 1000
    return {
        "sdk": sdk,
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100, help="events per POST /e request")
    parser.add_argument("--workers", type=int, default=100, help="server --queue-workers")
    parser.add_argument(
        "--sdk", action="append", choices=sorted(APPS), help="which SDKs (default: all)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="stepwise-bench-") as tmp:
        for sdk in args.sdk or list(APPS):
            print(f"running {sdk} with {args.events} events ...", flush=True)
            results.append(run_scenario(sdk, args.events, args.batch, args.workers, Path(tmp)))
    header = f"{'sdk':<16}{'runs/s':>10}{'steps/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}{'ingest ev/s':>13}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        print(
            f"{r['sdk']:<16}{r['runs_per_s']:>10}{r['steps_per_s']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['failed']:>8}{r['ingest_events_per_s']:>13}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"three_step-{stamp}.json"
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "storage": "sqlite (synchronous=NORMAL)",
        "stepwise_checkpointing": os.environ.get("STEPWISE_BENCH_CHECKPOINTING", "1") != "0",
        "load_average": os.getloadavg()[0],
    }
    path.write_text(
        json.dumps(
            {
                "benchmark": "three_step",
                "at": stamp,
                "meta": meta,
                "args": {"events": args.events, "batch": args.batch, "workers": args.workers},
                "results": results,
            },
            indent=2,
        )
    )
    print(f"\nwrote {path}")
    return 0 if all(r["failed"] == 0 and r["completed"] == r["events"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
