"""Without ``-u``, the dev server finds an app on the local ports it scans (here ``$PORT``)."""

from __future__ import annotations

from pathlib import Path

from support.harness import AppProcess, ServerProcess, free_port


def test_dev_server_discovers_and_syncs_an_app(tmp_path: Path) -> None:
    port = free_port()
    app = AppProcess(tmp_path, "durable_app", server_url=f"http://127.0.0.1:{port}")
    server = ServerProcess(tmp_path, port=port, sdk_urls=[], extra_env={"PORT": str(app.port)})
    server.args.remove("--no-discovery")
    try:
        app.start_and_wait()
        server.start_and_wait()
        server.wait_for_functions(8, timeout=30)
        apps = server.http.get("/v1/apps").json()["data"]
        assert [a["url"] for a in apps] == [app.url]
        event_id = server.send("test/catches")
        assert server.wait_for_run(event_id)["status"] == "Completed"
    finally:
        app.stop()
        server.close()
