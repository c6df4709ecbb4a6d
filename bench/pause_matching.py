"""100,000 runs waiting on one event name: how fast an event finds its pause, and resumes/s.

1. Starts `stepwise dev` (SQLite) and a Stepwise SDK app whose function waits for
   `bench/approve` with `async.data.id == event.data.id` (interpolated per run, so each
   pause is indexed by its own id).
2. Starts N runs and waits until all N pauses exist.
3. Lookup: opens the server's database read-only and, for sample events, times what the
   server's match job does: find candidate pauses by index and evaluate them.
4. Resumes: sends K approvals for K distinct runs and measures until all K complete.

    python bench/pause_matching.py --waiting 100000 --resume 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _stack import bench_stack, wait_for

from stepwise.server import expr
from stepwise.server.engine import pauses
from stepwise.server.store.records import EventRecord
from stepwise.server.store.sqlite.store import SqliteStore

HERE = Path(__file__).resolve().parent


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


async def measure_lookup(db: Path, samples: int, waiting: int) -> dict[str, float]:
    """Time the match path against the live database: index lookup + expression checks."""
    store = SqliteStore(str(db), synchronous="NORMAL")
    await store.open()
    try:
        timings = []
        found = 0
        for i in range(samples):
            target = (i * 7919) % waiting
            event = EventRecord(
                "bench",
                "bench",
                "bench/approve",
                {"id": target},
                {},
                0,
                None,
                int(time.time() * 1000),
            )
            wire = event.to_wire()
            start = time.perf_counter()
            candidates = await store.find_pauses(
                event.name,
                1 << 62,
                lambda path, wire=wire: expr.index_value(expr.value_at(wire, path)),
            )
            matched = [p for p in candidates if pauses.event_matches(p, event)]
            timings.append((time.perf_counter() - start) * 1000)
            found += len(matched)
        return {
            "lookup_p50_ms": round(statistics.median(timings), 3),
            "lookup_p99_ms": round(sorted(timings)[int(0.99 * (len(timings) - 1))], 3),
            "matches_per_lookup": found / samples,
        }
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--resume", type=int, default=5_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="stepwise-bench-pauses-"))
    with bench_stack(tmp, "pauses", HERE / "apps" / "stepwise_waiter.py") as stack:
        db, http = stack.db, stack.http
        print(f"starting {args.waiting} waiting runs ...", flush=True)
        start = time.perf_counter()
        for offset in range(0, args.waiting, 1000):
            batch = [
                {"name": "bench/wait", "data": {"id": i}}
                for i in range(offset, min(args.waiting, offset + 1000))
            ]
            http.post("/e/bench", json=batch).raise_for_status()
        wait_for(
            lambda: count(db, "SELECT count(*) FROM pauses WHERE kind = 'wait'") >= args.waiting,
            1800,
            "pauses",
            1.0,
        )
        setup_s = time.perf_counter() - start
        wal = db.with_name(db.name + "-wal")
        size = db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        server_rss_kb = int(
            Path(f"/proc/{stack.server_pid}/status").read_text().split("VmRSS:")[1].split()[0]
        )
        print(
            f"  {args.waiting} runs waiting after {setup_s:.1f}s; measuring lookups ...", flush=True
        )
        lookup = asyncio.run(measure_lookup(db, args.samples, args.waiting))
        print(f"resuming {args.resume} runs ...", flush=True)
        start = time.perf_counter()
        for offset in range(0, args.resume, 500):
            batch = [
                {"name": "bench/approve", "data": {"id": i}}
                for i in range(offset, min(args.resume, offset + 500))
            ]
            http.post("/e/bench", json=batch).raise_for_status()
        wait_for(
            lambda: (
                count(db, "SELECT count(*) FROM runs WHERE status = 'Completed'") >= args.resume
            ),
            1800,
            "resumes",
        )
        resume_s = time.perf_counter() - start
        wrong = count(
            db,
            f"SELECT count(*) FROM runs WHERE status = 'Completed' AND json_extract(output, '$') >= {args.resume}",
        )
    result = {
        "waiting_runs": args.waiting,
        "setup_s": round(setup_s, 1),
        "db_bytes_per_waiting_run": round(size / args.waiting),
        "server_rss_mb_while_waiting": round(server_rss_kb / 1024, 1),
        **lookup,
        "resumed": args.resume,
        "resumes_per_s": round(args.resume / resume_s, 1),
        "wrong_resumes": wrong,
    }
    print()
    for key, value in result.items():
        print(f"  {key:<28} {value}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"pause_matching-{stamp}.json"
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    path.write_text(
        json.dumps(
            {"benchmark": "pause_matching", "at": stamp, "meta": meta, "result": result}, indent=2
        )
    )
    print(f"\nwrote {path}")
    return 0 if result["matches_per_lookup"] == 1 and wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
