"""``stepwise dev`` as a person starts it: on a port that may be taken, and with ``-u``
given as a bare ``host:port``.

Where the server listens and how it reads ``-u`` do not depend on the store: SQLite only.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest

from support.harness import AppProcess, ServerProcess, free_port, wait_until

pytestmark = pytest.mark.backends("sqlite")  # the command line is under test, not the store

LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


def test_a_taken_port_moves_the_dev_server_to_the_next_free_one_and_it_says_so(
    backend: str, tmp_path: Path
) -> None:
    # The app learns the server's URL only once the server has said where it listens. Its
    # port is handed out first: the server looks for a free port above the taken one only.
    app = AppProcess(tmp_path, "durable_app", server_url="http://127.0.0.1:1")
    taken = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        server = ServerProcess(tmp_path, port=taken, sdk_urls=[], extra_env={"PORT": str(app.port)})
        server.args.remove("--no-discovery")  # discovery must skip the server's own new port
        try:
            server.start()
            found = wait_until(
                lambda: LISTENING.search(server.log()), timeout=20, what="the listening line"
            )
            port = int(found.group(1))
            assert port != taken
            assert f"port {taken} is in use: listening on port {port} instead" in server.log()
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=10) as http:
                assert http.get("/health").status_code == 200
                # An app told where the server really is gets discovered and runs there.
                app.env["STEPWISE_TEST_SERVER"] = url
                app.start_and_wait()

                def synced() -> bool:
                    data = http.get("/v1/apps").json()["data"]
                    return bool(data) and data[0]["url"] == app.url

                wait_until(synced, timeout=30, what="the discovered app")
                event = http.post(
                    f"/e/{server.event_key}", json=[{"name": "test/catches", "data": {}}]
                ).json()["ids"][0]

                def run_status() -> str | None:
                    runs = http.get(f"/v1/events/{event}/runs").json()["data"]
                    return runs[0]["status"] if runs and runs[0]["status"] == "Completed" else None

                assert wait_until(run_status, timeout=30, what="the run") == "Completed"
        finally:
            app.stop()
            server.close()


def test_a_bare_host_and_port_names_the_app_at_api_inngest(backend: str, tmp_path: Path) -> None:
    port = free_port()
    app = AppProcess(tmp_path, "durable_app", server_url=f"http://127.0.0.1:{port}")
    server = ServerProcess(tmp_path, port=port, sdk_urls=[f"127.0.0.1:{app.port}"])
    try:
        app.start_and_wait()
        server.start_and_wait()
        server.wait_for_functions(8)
        assert [a["url"] for a in server.http.get("/v1/apps").json()["data"]] == [app.url]
        syncs = server.http.get("/v1/app-syncs").json()["data"]
        assert [s["url"] for s in syncs] == [app.url]
    finally:
        app.stop()
        server.close()
