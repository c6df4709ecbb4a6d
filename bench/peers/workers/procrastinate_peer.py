"""B1 and B2 on Procrastinate (PyPI ``procrastinate``), a job queue in PostgreSQL.

A run is three tasks, each deferring the next from its body (Procrastinate has no chains);
B1 defers N first tasks in batches of 100 (``batch_defer_async``, one statement per batch,
like the 100 events of one ``POST /e``) and waits until N third tasks have succeeded. A
worker process (concurrency 10: the default of 1 serialises every job; listen/notify on,
the default) runs them. Times are Procrastinate's own records: the first task's
``deferred`` event and the third one's ``succeeded`` event. B2 is one chain of S tasks
passing on the list of times at which their bodies ran.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
from typing import Any

import procrastinate
from _protocol import emit, now_ms, parse_args

CONCURRENCY = 10
BATCH = 100

ARGS = parse_args(__doc__ or "", database="postgresql://postgres@127.0.0.1:5432/postgres")
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=ARGS.database))


@app.task(name="bench_first")
async def first(i: int) -> None:
    await second.defer_async(i=i, value=1)


@app.task(name="bench_second")
async def second(i: int, value: int) -> None:
    await third.defer_async(i=i, value=value + 1)


@app.task(name="bench_third")
async def third(i: int, value: int) -> None:
    pass


@app.task(name="bench_step")
async def step(k: int, steps: int, times: list[float]) -> None:
    times = [*times, now_ms()]
    if k < steps:
        await step.defer_async(k=k + 1, steps=steps, times=times)
    else:
        await done.defer_async(times=times)


@app.task(name="bench_done")
async def done(times: list[float]) -> None:
    pass


B1_TIMES = """
SELECT extract(epoch FROM d.at) * 1000, extract(epoch FROM s.at) * 1000
FROM procrastinate_jobs a
JOIN procrastinate_events d ON d.job_id = a.id AND d.type = 'deferred'
JOIN procrastinate_jobs c ON c.task_name = 'bench_third' AND c.args->>'i' = a.args->>'i'
JOIN procrastinate_events s ON s.job_id = c.id AND s.type = 'succeeded'
WHERE a.task_name = 'bench_first'
"""


async def fetch(sql: str) -> list[Any]:
    async with app.connector.pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(sql)
        return await cur.fetchall()


async def wait_until(sql: str, enough: int) -> None:
    while True:
        ((count,),) = await fetch(sql)
        (failed,) = (
            await fetch("SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'")
        )[0]
        if count >= enough or failed:
            return
        await asyncio.sleep(0.05)


async def b1(events: int) -> dict[str, object]:
    for offset in range(0, events, BATCH):
        await first.batch_defer_async(
            *({"i": i} for i in range(offset, min(events, offset + BATCH)))
        )
    await wait_until(
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'bench_third' AND status = 'succeeded'",
        events,
    )
    samples = [[float(a), float(b)] for a, b in await fetch(B1_TIMES)]
    return {"samples": samples, "failed": events - len(samples)}


async def b2(steps: int) -> dict[str, object]:
    await step.defer_async(k=1, steps=steps, times=[])
    await wait_until("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'bench_done'", 1)
    ((args,),) = await fetch("SELECT args FROM procrastinate_jobs WHERE task_name = 'bench_done'")
    return {"step_times": args["times"]}


async def drive(args: Any) -> dict[str, object]:
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        worker = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "worker", "--database", args.database, stdout=sys.stderr
        )
        try:
            return await (b1(args.events) if args.workload == "b1" else b2(args.steps))
        finally:
            worker.terminate()
            await worker.wait()


def main() -> None:
    if ARGS.workload == "worker":
        app.run_worker(concurrency=CONCURRENCY)
        return
    result = asyncio.run(drive(ARGS))
    emit({"version": f"procrastinate {importlib.metadata.version('procrastinate')}", **result})


if __name__ == "__main__":
    main()
