"""`make demo`: the server on an embedded SQLite file, an example app, and two orders run to completion.

Starts `stepwise dev` and `examples/app.py` as separate processes, sends events with the
SDK client, waits for each run, prints its step timeline and output, and exits 0.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

import stepwise

HERE = Path(__file__).resolve().parent


def free_port(preferred: int) -> int:
    for candidate in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = s.getsockname()[1]
            return port
    raise RuntimeError("no free port")


def wait_for(what: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def main() -> int:
    server_port = free_port(8288)
    app_port = free_port(8000)
    while app_port == server_port:  # both fell back to an OS-chosen port, and got the same one
        app_port = free_port(0)
    server_url = f"http://127.0.0.1:{server_port}"
    app_url = f"http://127.0.0.1:{app_port}/api/inngest"
    workdir = Path(tempfile.mkdtemp(prefix="stepwise-demo-"))
    db = workdir / "dev.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PORT": str(app_port), "INNGEST_DEV": server_url}
    server_log = open(workdir / "server.log", "wb")  # noqa: SIM115 - owned by the child
    app_log = open(workdir / "app.log", "wb")  # noqa: SIM115 - owned by the child
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stepwise",
            "dev",
            "--port",
            str(server_port),
            "--sqlite-path",
            str(db),
            "--no-discovery",
            "-u",
            app_url,
            "--retry-interval",
            "1",
        ],
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    app = subprocess.Popen(
        [sys.executable, str(HERE / "app.py")], env=env, stdout=app_log, stderr=subprocess.STDOUT
    )
    http = httpx.Client(base_url=server_url, timeout=10)
    try:
        print(f"stepwise dev  -> {server_url}   (SQLite: {db})")
        print(f"example app   -> {app_url}")
        wait_for("the server", lambda: http.get("/health").status_code == 200)
        wait_for("the app to sync", lambda: http.get("/dev").json()["functions"])
        print("app synced: " + ", ".join(f["id"] for f in http.get("/dev").json()["functions"]))

        client = stepwise.Stepwise(
            app_id="demo-sender",
            is_production=False,
            event_api_base_url=server_url,
            api_base_url=server_url,
        )
        ids = client.send_sync(
            [
                stepwise.Event(name="shop/order.placed", data={"order_id": "A-1001", "items": 2}),
                stepwise.Event(name="shop/order.placed", data={"order_id": "A-1002", "items": 5}),
            ]
        )
        print(f"sent 2 events: {', '.join(ids)}\n")

        for event_id in ids:
            run = wait_for(
                f"the run of {event_id}",
                lambda event_id=event_id: next(
                    (
                        r
                        for r in http.get(f"/v1/events/{event_id}/runs").json()["data"]
                        if r["status"] in ("Completed", "Failed")
                    ),
                    None,
                ),
            )
            print(f"run {run['run_id']}  {run['status']}")
            for entry in http.get(f"/v1/runs/{run['run_id']}/history").json()["data"]:
                detail = ""
                if "output" in entry:
                    detail = f"-> {json.dumps(entry['output'])}"
                elif "error" in entry:
                    detail = (
                        f"attempt {entry['attempt']} failed: {entry['error']['message']} (retrying)"
                    )
                elif "until" in entry:
                    detail = f"until {entry['until']}"
                print(
                    f"  {entry['at'][11:23]}  {entry['kind']:<15} {entry['name'] or '':<18} {detail}"
                )
            print(f"  output: {json.dumps(run['output'])}\n")
            if run["status"] != "Completed":
                raise RuntimeError(f"run {run['run_id']} did not complete")

        shipped = http.get("/v1/events", params={"name": "shop/order.shipped"}).json()["data"]
        print(f"the runs sent {len(shipped)} shop/order.shipped events. Demo complete.")
        return 0
    except Exception as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        for name in ("server.log", "app.log"):
            print(
                f"--- {name} ---\n{(workdir / name).read_text(errors='replace')[-3000:]}",
                file=sys.stderr,
            )
        return 1
    finally:
        http.close()
        for proc in (app, server):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        server_log.close()
        app_log.close()


if __name__ == "__main__":
    sys.exit(main())
