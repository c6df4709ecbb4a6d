"""B1 and B2 on Celery (PyPI ``celery[redis]``) with Redis as broker and result backend.

A run is a chain of three tasks, each passing its result to the next; B1 submits N chains
and waits for their last tasks' results. A worker process of Celery's defaults (the prefork
pool, one child per core, a task acknowledged when received) is started with a queue and
node name of this run's own, so nothing else on the same Redis interferes. A run is
submitted just before ``apply_async`` and ends when its last task's body returns. B2 is one
chain of S tasks, each appending when its body ran to the list it passes on.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
import uuid

import redis
from _protocol import emit, now_ms, parse_args
from celery import Celery, chain
from celery.result import ResultSet

RUN = os.environ.setdefault("BENCH_CELERY_RUN", uuid.uuid4().hex[:8])
QUEUE = f"bench-peers-{RUN}"
NODE = f"bench-{RUN}@localhost"

app = Celery("bench_peers")


@app.task
def add(value: int) -> int:
    return value + 1


@app.task
def finish(value: int) -> float:
    return now_ms()


@app.task
def stamp(times: list[float]) -> list[float]:
    return [*times, now_ms()]


def configure(broker: str) -> None:
    app.conf.update(
        broker_url=broker,
        result_backend=broker,
        task_default_queue=QUEUE,
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )


def start_worker(broker: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "worker", "--broker", broker]
    worker = subprocess.Popen(command, stdout=sys.stderr, env=os.environ)
    deadline = time.monotonic() + 120
    while not app.control.ping(destination=[NODE], timeout=1):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the Celery worker did not start")
    return worker


def b1(events: int) -> dict[str, object]:
    submitted, results = [], []
    for _ in range(events):
        submitted.append(now_ms())
        results.append(chain(add.s(0), add.s(), finish.s()).apply_async())
    ended = ResultSet(results).join(timeout=1800, propagate=False)
    samples = [
        [at, end] for at, end in zip(submitted, ended, strict=True) if isinstance(end, float)
    ]
    return {"samples": samples, "failed": events - len(samples)}


def b2(steps: int) -> dict[str, object]:
    run = chain(stamp.s([]), *[stamp.s() for _ in range(steps - 1)]).apply_async()
    return {"step_times": run.get(timeout=600)}


def redis_persistence(broker: str) -> str:
    """How durable the broker is: Celery's own durability is only the broker's."""
    config = redis.Redis.from_url(broker, decode_responses=True)
    settings = {
        **config.config_get("appendonly"),
        **config.config_get("appendfsync"),
        **config.config_get("save"),
    }
    return "Redis as configured here: " + ", ".join(
        f"{k}={v!r}" for k, v in sorted(settings.items())
    )


def main() -> None:
    args = parse_args(__doc__ or "", broker="redis://127.0.0.1:6379/0")
    configure(args.broker)
    if args.workload == "worker":
        app.worker_main(["worker", "--loglevel=WARNING", "-Q", QUEUE, "-n", NODE])
        return
    worker = start_worker(args.broker)
    try:
        result = b1(args.events) if args.workload == "b1" else b2(args.steps)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        redis.Redis.from_url(args.broker).delete(QUEUE, f"_kombu.binding.{QUEUE}")
    emit(
        {
            "version": f"celery {importlib.metadata.version('celery')}",
            "notes": [redis_persistence(args.broker)],
            **result,
        }
    )


if __name__ == "__main__":
    main()
