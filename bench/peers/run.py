"""Stepwise and the systems a Python team would pick instead, side by side in one run.

    python bench/peers/run.py                 # the full run: 10,000 events, 100 steps
    python bench/peers/run.py --events 200    # the short one (`make bench`)

Workloads, the same on every system:

* B1 — N events, each starting a 3-step run, to completion: runs/s from the first event
  submitted to the last run ended, and each run's submitted-to-ended latency;
* B2 — one run of S steps: the time between consecutive steps' bodies (the durable
  overhead per step; the steps themselves do nothing), over the run, its first ten steps
  and its last ten.

Systems, one after the other, each on a fresh store:

* ``stepwise · sqlite`` and ``stepwise · postgres`` — our server (`stepwise start`, the
  production mode: SQLite synchronous=FULL, PostgreSQL synchronous_commit=on) and our SDK
  (bench/apps/stepwise_three.py);
* ``inngest-py · sqlite`` — the official Inngest Python SDK serving the same functions to
  our server (bench/apps/inngest_three.py);
* ``dbos · sqlite``, ``dbos · postgres``, ``celery · redis``, ``procrastinate · postgres``
  — the workers in bench/peers/workers/, each in its own virtualenv
  (bench/peers/venvs.py installs them from PyPI on first use).

Writes bench/results/peers-<UTC time>.json, .md and .png (see bench/peers/report.py for
the ratios). A peer that cannot run (its service down, its install failed) is reported as
not measured; the exit status is 1 if any system failed a run or was not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from _stack import (  # noqa: E402
    EVENT_KEY,
    POSTGRES_ADMIN,
    cluster,
    fresh_postgres_database,
    fresh_store,
    run_times,
    send_events,
    wait_for,
)

from peers.report import (  # noqa: E402
    Row,
    add_ratios,
    markdown_table,
    summarise_b1,
    summarise_b2,
    write_report,
)
from peers.venvs import peer_python  # noqa: E402

WORKERS = Path(__file__).resolve().parent / "workers"
OUR_APPS = {
    "stepwise": (BENCH / "apps" / "stepwise_three.py", "bench"),
    "inngest-py": (BENCH / "apps" / "inngest_three.py", "bench-official"),
}
# (system, store, the Stepwise row it is compared with)
SYSTEMS = [
    ("stepwise", "sqlite", "stepwise · sqlite"),
    ("stepwise", "postgres", "stepwise · postgres"),
    ("inngest-py", "sqlite", "stepwise · sqlite"),
    ("dbos", "sqlite", "stepwise · sqlite"),
    ("dbos", "postgres", "stepwise · postgres"),
    ("celery", "redis", "stepwise · sqlite"),
    ("procrastinate", "postgres", "stepwise · postgres"),
]
NOTES = {
    "stepwise": "`stepwise start` (production mode); SQLite synchronous=FULL, PostgreSQL "
    "synchronous_commit=on; events sent in batches of 100 per `POST /e`; times from the "
    "server's records (event received, run ended)",
    "inngest-py": "the official SDK (FastAPI, production mode) served to our server as above",
    "dbos": "one process enqueues each run on a DBOS queue (polled every 0.1 s) and runs "
    "it; DBOS's defaults otherwise; a run ends when its workflow body returns",
    "celery": "a chain of three tasks; one worker of Celery's defaults (prefork, one child "
    "per core, tasks acknowledged on receipt); a run ends when its last task's body returns",
    "procrastinate": "a task deferring the next (no chains); one worker, concurrency 10; "
    "first tasks deferred in batches of 100; times from Procrastinate's event records. Its "
    "worker clears its new-job flag after each fetch, so a job deferred during a fetch can "
    "wait for the next poll (5 s by default): B2's mean carries such stalls, its median not",
}


def lines_tail(text: str, count: int = 5) -> str:
    return " / ".join(text.strip().splitlines()[-count:])


# -- Stepwise's server, with our SDK or the official one -------------------------------


def run_ours(row: Row, args: argparse.Namespace, workdir: Path) -> None:
    app, app_id = OUR_APPS[row.system]
    python = sys.executable if row.system == "stepwise" else str(peer_python("inngest"))
    name = f"{row.system}-{row.store}"
    with (
        fresh_store(row.store, workdir, name, args.postgres) as store,
        cluster(
            workdir, name, store.args, 1, args.workers, app=app, app_id=app_id, app_python=python
        ) as clients,
    ):
        send_events(clients, args.events, args.batch, "bench/three")
        rows = run_times(store.query, args.events, args.timeout)
        samples = [(received, ended) for status, received, ended in rows if status == "Completed"]
        row.b1 = summarise_b1(samples, failed=len(rows) - len(samples))
        row.b2 = summarise_b2(our_step_times(clients[0], args.steps, args.timeout))
    row.version = version_of(python, "stepwise" if row.system == "stepwise" else "inngest")


def our_step_times(client: httpx.Client, steps: int, timeout: float) -> list[float]:
    sent = client.post(f"/e/{EVENT_KEY}", json={"name": "bench/steps", "data": {"steps": steps}})
    event_id = sent.raise_for_status().json()["ids"][0]
    runs: list[dict[str, Any]] = []

    def ended() -> bool:
        runs[:] = client.get(f"/v1/events/{event_id}/runs").json()["data"]
        return bool(runs) and runs[0]["status"] in ("Completed", "Failed", "Cancelled")

    wait_for(ended, timeout, "the B2 run to end", interval=0.2)
    if runs[0]["status"] != "Completed":
        raise RuntimeError(f"the B2 run ended {runs[0]['status']}")
    times: list[float] = runs[0]["output"]
    return times


def version_of(python: str, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    found = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return f"{package} {found.stdout.strip()}" if found.returncode == 0 else package


# -- The peers, each a worker script in its own virtualenv -----------------------------


@contextmanager
def peer_connection(row: Row, args: argparse.Namespace, workdir: Path, workload: str) -> Iterator[list[str]]:  # fmt: skip
    """The worker script's connection options, on a store of its own for this workload."""
    if row.store == "postgres":
        with fresh_postgres_database(args.postgres, f"bench_{row.system}") as uri:
            yield ["--database", uri]
    elif row.store == "sqlite":
        yield ["--database", f"sqlite:///{workdir / f'{row.system}-{workload}.sqlite'}"]
    else:
        yield ["--broker", args.redis]


def run_peer(row: Row, args: argparse.Namespace, workdir: Path) -> None:
    python = peer_python(row.system)
    script = WORKERS / f"{row.system}_peer.py"
    for workload in ("b1", "b2"):
        with peer_connection(row, args, workdir, workload) as connection:
            command = [str(python), str(script), workload, "--events", str(args.events),
                       "--steps", str(args.steps), *connection]  # fmt: skip
            log = workdir / f"{row.system}-{row.store}-{workload}.log"
            with log.open("w") as stderr:
                done = subprocess.run(
                    command, cwd=workdir, stdout=subprocess.PIPE, stderr=stderr, text=True,
                    timeout=args.timeout, check=False,
                )  # fmt: skip
            if done.returncode != 0 or not done.stdout.strip():
                raise RuntimeError(
                    f"{workload} exited {done.returncode}: {lines_tail(log.read_text())}"
                )
            result = json.loads(done.stdout.strip().splitlines()[-1])
        row.version = result["version"]
        row.notes += [n for n in result.get("notes", []) if n not in row.notes]
        if workload == "b1":
            row.b1 = summarise_b1(result["samples"], failed=result["failed"])
        else:
            row.b2 = summarise_b2(result["step_times"])


# -- What is there, and the run as a whole ---------------------------------------------


def unavailable(store: str, args: argparse.Namespace) -> str | None:
    """Why ``store``'s service cannot be used, or None."""
    if store == "postgres":
        try:
            psycopg.connect(args.postgres, connect_timeout=5).close()
        except psycopg.Error as exc:
            return f"PostgreSQL not reachable at {args.postgres} ({exc})"
    if store == "redis":
        host, port = args.redis.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            return f"Redis not reachable at {args.redis} ({exc})"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000, help="B1: events (runs)")
    parser.add_argument("--steps", type=int, default=100, help="B2: steps in the long run")
    parser.add_argument("--batch", type=int, default=100, help="events per POST /e (ours)")
    parser.add_argument("--workers", type=int, default=100, help="our server's --queue-workers")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per workload")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="an administrative URI")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    labels = [f"{system}-{store}" for system, store, _ in SYSTEMS]
    parser.add_argument("--only", action="append", choices=labels, help="default: all")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()

    at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    load_at_start = round(os.getloadavg()[0], 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="stepwise-peers-") as tmp:
        for system, store, baseline in SYSTEMS:
            if args.only and f"{system}-{store}" not in args.only:
                continue
            row = Row(system=system, store=store, baseline=baseline, notes=[NOTES[system]])
            rows.append(row)
            print(f"running {row.label} ...", flush=True)
            started = time.monotonic()
            reason = unavailable(store, args)
            try:
                if reason:
                    raise RuntimeError(reason)
                (run_ours if system in OUR_APPS else run_peer)(row, args, Path(tmp))
            except Exception as exc:
                row.errors.append(f"{type(exc).__name__}: {exc}")
                print(f"  not measured: {row.errors[-1]}", flush=True)
            print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    add_ratios(rows)
    meta = {
        "at": at,
        "events": args.events,
        "steps": args.steps,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": [load_at_start, round(os.getloadavg()[0], 1)],
        "args": {"batch": args.batch, "workers": args.workers},
        "stepwise_checkpointing": os.environ.get("STEPWISE_BENCH_CHECKPOINTING", "1") != "0",
    }
    print("\n" + markdown_table(rows) + "\n")
    for path in write_report(rows, meta, args.out):
        print(f"wrote {path}")
    incomplete = [
        r
        for r in rows
        if r.errors or not r.b1 or r.b1["failed"] or r.b1["completed"] != args.events
    ]
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
