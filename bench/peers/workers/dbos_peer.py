"""B1 and B2 on DBOS Transact (PyPI ``dbos``), on SQLite or PostgreSQL.

DBOS is a library inside the application's process, so one process does what our server
and app do together: B1 enqueues N workflows on a durable queue (the analogue of N events:
each enqueue is a committed row) and the same process's queue runner executes them, each
workflow three ``@DBOS.step``s. A run is submitted just before its enqueue and ends when its
workflow body returns, after its three steps were recorded (DBOS's own ``created_at`` and
``updated_at`` have whole seconds only on SQLite). B2 runs one workflow of S steps, each
returning when its body ran.

The queue polls every 0.1 s instead of the default 1 s, so that a short run does not mostly
measure the first poll; every other setting is DBOS's default.
"""

from __future__ import annotations

import importlib.metadata

from _protocol import emit, now_ms, parse_args
from dbos import DBOS

QUEUE = "bench"


@DBOS.step()
def add(value: int) -> int:
    return value + 1


@DBOS.step()
def stamp() -> float:
    return now_ms()


@DBOS.workflow()
def three_steps(i: int) -> float:
    add(add(add(0)))
    return now_ms()


@DBOS.workflow()
def many_steps(steps: int) -> list[float]:
    return [stamp() for _ in range(steps)]


def b1(events: int) -> dict[str, object]:
    submitted = []
    handles = []
    for i in range(events):
        submitted.append(now_ms())
        handles.append(DBOS.enqueue_workflow(QUEUE, three_steps, i))
    samples, failed = [], 0
    for at, handle in zip(submitted, handles, strict=True):
        try:
            samples.append([at, handle.get_result()])
        except Exception:
            failed += 1
    return {"samples": samples, "failed": failed}


def main() -> None:
    args = parse_args(__doc__ or "", database="sqlite:///dbos-bench.sqlite")
    DBOS(
        config={"name": "bench-peers", "system_database_url": args.database, "log_level": "WARNING"}
    )
    DBOS.launch()
    try:
        DBOS.register_queue(QUEUE, polling_interval_sec=0.1)
        if args.workload == "b1":
            result = b1(args.events)
        else:
            result = {"step_times": DBOS.start_workflow(many_steps, args.steps).get_result()}
    finally:
        DBOS.destroy()
    emit({"version": f"dbos {importlib.metadata.version('dbos')}", **result})


if __name__ == "__main__":
    main()
