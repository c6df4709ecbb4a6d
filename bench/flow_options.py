"""The 3-step benchmark with each flow-control option on, beside the figure with none.

Each variant gets a fresh server (SQLite) and the same app; N events go to that variant's
function, and runs/s is measured from the first event received to the last run ended.
Limits are set not to bind (see apps/stepwise_flow_three.py): this measures each option's
cost. Debounce adds its 1 s quiet period to every run; batching starts a run per 10 events.

    python bench/flow_options.py --events 2000
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

from _stack import bench_stack, wait_for

HERE = Path(__file__).resolve().parent
APP = HERE / "apps" / "stepwise_flow_three.py"
VARIANTS = [
    "none",
    "concurrency",
    "throttle",
    "rate_limit",
    "idempotency",
    "debounce",
    "batch",
    "priority",
    "singleton",
]


def run_variant(variant: str, events: int, workdir: Path) -> dict[str, Any]:
    expected = events // 10 if variant == "batch" else events
    slug = f"bench-flow-{variant}"
    with bench_stack(workdir, variant, APP) as stack:
        for offset in range(0, events, 100):
            body = [
                {"name": f"bench/flow.{variant}", "data": {"i": i, "k": i % 50}}
                for i in range(offset, min(events, offset + 100))
            ]
            stack.http.post("/e/bench", json=body).raise_for_status()
        reader = sqlite3.connect(stack.db)

        def done() -> bool:
            row = reader.execute(
                "SELECT count(*) FROM runs WHERE function_slug = ? AND status = 'Completed'",
                (slug,),
            ).fetchone()
            return bool(row[0] >= expected)

        wait_for(done, 600, f"{variant}: {expected} runs")
        first = reader.execute(
            "SELECT min(received_at) FROM events WHERE name = ?", (f"bench/flow.{variant}",)
        ).fetchone()[0]
        last, runs = reader.execute(
            "SELECT max(ended_at), count(*) FROM runs WHERE function_slug = ? AND status = 'Completed'",
            (slug,),
        ).fetchone()
        reader.close()
    wall = (last - first) / 1000
    return {
        "variant": variant,
        "events": events,
        "runs": runs,
        "runs_per_s": round(runs / wall, 1),
        "events_per_s": round(events / wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--variant", action="append", choices=VARIANTS)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="stepwise-bench-flow-") as tmp:
        for variant in args.variant or VARIANTS:
            print(f"running {variant} ...", flush=True)
            results.append(run_variant(variant, args.events, Path(tmp)))
            time.sleep(0.5)
    print(f"\n{'option':<14}{'runs':>8}{'runs/s':>10}{'events/s':>10}")
    for r in results:
        print(f"{r['variant']:<14}{r['runs']:>8}{r['runs_per_s']:>10}{r['events_per_s']:>10}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"flow_options-{stamp}.json"
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    path.write_text(
        json.dumps(
            {"benchmark": "flow_options", "at": stamp, "meta": meta, "results": results}, indent=2
        )
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
