"""Three `stepwise start` nodes on one PostgreSQL database; one is killed with kill -9 mid-load.

The app syncs through the first node only; events go to every node in turn; the run's
wait-for-event is satisfied by events sent to whichever node is alive. Every run must
complete, each step's recorded result must be one the app produced, a step body may only
have run again when a node died while it was in flight, and the concurrency limit holds
across the cluster, counted by the app.
"""

from __future__ import annotations

import collections
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from support.harness import AppProcess, ServerProcess, free_port, wait_until

SIGNING_KEY = "signkey-prod-" + "c1" * 32
EVENT_KEY = "cluster-event-key"
RUNS = 2000
LIMIT = 25
NODES = 3

# Once, not per backend: the nodes share one PostgreSQL database of their own (`pg_uri`).
pytestmark = [pytest.mark.timeout(600), pytest.mark.backends("postgres")]


def _node(tmp: Path, uri: str, sdk_urls: list[str], port: int | None = None) -> ServerProcess:
    node = ServerProcess(
        tmp, sdk_urls=sdk_urls, port=port, extra_args=["--lease-seconds", "5"], postgres_uri=uri
    )
    node.production(signing_key=SIGNING_KEY, event_key=EVENT_KEY)
    return node


def _send(node: ServerProcess, name: str, datas: list[dict[str, Any]]) -> list[str]:
    body = [{"name": name, "data": d} for d in datas]
    r = node.http.post(
        f"/e/{EVENT_KEY}", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    r.raise_for_status()
    ids: list[str] = r.json()["ids"]
    return ids


def test_three_nodes_survive_a_kill_9(tmp_path: Path, pg_uri: str) -> None:
    port = free_port()
    app = AppProcess(
        tmp_path,
        "cluster_app",
        server_url=f"http://127.0.0.1:{port}",
        extra_env={"INNGEST_SIGNING_KEY": SIGNING_KEY, "CLUSTER_LIMIT": str(LIMIT)},
    )
    nodes = [_node(tmp_path, pg_uri, [app.url], port)]
    nodes += [_node(tmp_path, pg_uri, []) for _ in range(NODES - 1)]
    try:
        app.start_and_wait()
        for node in nodes:  # one after another: the first one migrates the database
            node.start_and_wait(timeout=60)
        nodes[0].wait_for_functions(1)
        for node in nodes[1:]:
            # Synced through node 0; known to the others from the database.
            wait_until(
                lambda n=node: n.http.get("/v1/apps/cluster/functions").json().get("data"),
                timeout=5,
                what="the app to be known on every node",
            )

        began = time.monotonic()
        turn = itertools.cycle(nodes)
        event_ids: list[str] = []
        for offset in range(0, RUNS, 100):
            datas = [{"n": n} for n in range(offset, min(RUNS, offset + 100))]
            event_ids += _send(next(turn), "cluster/start", datas)

        def done_steps() -> dict[str, set[int]]:
            seen: dict[str, set[int]] = collections.defaultdict(set)
            for line in app.ledger_of("done"):
                seen[line["step"]].add(line["n"])
            return seen

        wait_until(
            lambda: len(done_steps()["first"]) >= RUNS // 3,
            timeout=120,
            what="a third of the runs to be under way",
        )
        print(f"a third under way after {time.monotonic() - began:.1f}s; killing node 1")
        nodes[1].kill()
        alive = [nodes[0], nodes[2]]

        def all_ended() -> bool:
            # Release every wait whose run is ready; a go event may come before the pause
            # exists, so keep sending until the run's last step ran.
            seen = done_steps()
            waiting = sorted(seen["ready"] - seen["last"])
            for chunk in range(0, len(waiting), 200):
                target = alive[chunk // 200 % len(alive)]
                _send(target, "cluster/go", [{"n": n} for n in waiting[chunk : chunk + 200]])
            return len(seen["last"]) >= RUNS

        wait_until(all_ended, timeout=420, interval=1.0, what="every run's last step")
        print(f"every run's last step ran after {time.monotonic() - began:.1f}s")

        def runs_of(event_id: str) -> list[dict[str, Any]]:
            return alive[0].runs(event_id)

        deadline = time.monotonic() + 120
        runs: list[dict[str, Any]] = []
        for event_id in event_ids:
            while True:
                found = runs_of(event_id)
                if found and found[0]["status"] in ("Completed", "Failed", "Cancelled"):
                    break
                assert time.monotonic() < deadline, f"run of {event_id} did not end: {found}"
                time.sleep(0.2)
            assert len(found) == 1, found
            runs.append(found[0])
    finally:
        app.stop()
        for node in nodes:
            node.close()

    ledger = app.ledger_of("done")
    tokens = {(e["run_id"], e["step"]): set() for e in ledger}
    for e in ledger:
        tokens[(e["run_id"], e["step"])].add(e["token"])
    assert [r["status"] for r in runs].count("Completed") == RUNS, collections.Counter(
        r["status"] for r in runs
    )
    for run in runs:
        output = run["output"]
        assert output["go"] is True, run
        for step in ("first", "ready", "last"):
            # The recorded result is one the app produced for this run and step.
            assert output[step] in tokens[(run["run_id"], step)], (run, step)
    # A body ran more than once only when the node running it died: at most the calls that
    # were in flight then, which the concurrency limit bounds.
    repeats = sum(len(t) - 1 for t in tokens.values())
    assert repeats <= LIMIT, repeats
    assert max(e["in_flight"] for e in ledger) <= LIMIT
