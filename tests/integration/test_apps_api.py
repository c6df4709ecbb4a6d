"""Apps by URL over HTTP: ``POST /v1/apps`` syncs an app now and keeps its URL among those
the server syncs (across a restart); ``POST /v1/apps/{name}/resync`` picks up a change;
every attempt is kept with its reason (``GET /v1/apps``, ``GET /v1/app-syncs``); a URL the
outbound guard refuses is refused and not kept."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.harness import AppProcess, ServerProcess, free_port, server_and_app, wait_until

SIGNING_KEY = "signkey-prod-" + "5d" * 32


def add(server: ServerProcess, url: str) -> httpx.Response:
    return server.http.post("/v1/apps", json={"url": url})


def slugs(app: dict[str, Any]) -> list[str]:
    return sorted(f["slug"] for f in app["functions"])


def syncs(server: ServerProcess) -> dict[str, dict[str, Any]]:
    return {s["url"]: s for s in server.http.get("/v1/app-syncs").json()["data"]}


def ok_apps(server: ServerProcess) -> list[str]:
    apps = server.http.get("/v1/apps").json()["data"]
    return [a["name"] for a in apps if a["sync"] and a["sync"]["status"] == "ok"]


def assert_synced_by_polling(server: ServerProcess, url: str) -> None:
    """The server syncs the app at ``url`` by itself: its one app, kept as synced."""
    server.wait_for_functions(1, timeout=30)
    # The attempt is kept just after the functions are: wait for it too.
    wait_until(lambda: ok_apps(server), timeout=10, what="the sync kept as ok")
    [synced] = server.http.get("/v1/apps").json()["data"]
    assert (synced["url"], synced["sync"]["status"]) == (url, "ok")


def test_an_app_added_by_url_syncs_now_and_a_resync_picks_up_its_change(tmp_path: Path) -> None:
    server, app = server_and_app(tmp_path, "appsync_app")
    try:
        app.start_and_wait()
        server.start_and_wait()
        assert server.http.get("/v1/apps").json()["data"] == []  # no -u, no discovery

        response = add(server, app.url)
        assert response.status_code == 201, response.text
        added = response.json()["data"]
        assert (added["name"], added["url"], slugs(added)) == (
            "appsync",
            app.url,
            ["appsync-first"],
        )
        assert (added["sdk_language"], added["function_count"]) == ("py", 1)
        assert added["sdk_version"] and added["framework"]
        assert added["sync"]["status"] == "ok" and added["sync"]["error"] is None
        assert added["sync"]["added_at"] is not None
        # Its functions run.
        assert server.wait_for_run(server.send("appsync/first"))["status"] == "Completed"

        # The app changes (a new function) and is asked to sync again.
        app.stop()
        app.env["STEPWISE_TEST_GROWN"] = "1"
        app.start_and_wait()
        before = server.http.get("/v1/apps/appsync").json()["data"]["sync"]["attempted_at"]
        time.sleep(0.01)
        response = server.http.post("/v1/apps/appsync/resync")
        assert response.status_code == 200, response.text
        resynced = response.json()["data"]
        assert slugs(resynced) == ["appsync-first", "appsync-second"]
        assert resynced["sync"]["status"] == "ok"
        assert resynced["sync"]["attempted_at"] > before
        assert server.wait_for_run(server.send("appsync/second"))["status"] == "Completed"

        # The app goes away: a resync says why, and the app is shown failing.
        app.stop()
        response = server.http.post("/v1/apps/appsync/resync")
        assert response.status_code == 502, response.text
        assert response.json()["error"].startswith("unreachable: ")
        failing = server.http.get("/v1/apps/appsync").json()["data"]
        assert failing["sync"]["status"] == "failing"
        assert failing["sync"]["error"] == response.json()["error"]
        assert failing["function_count"] == 2  # what it synced last is kept

        missing = server.http.post("/v1/apps/nope/resync")
        assert (missing.status_code, missing.json()["code"]) == (404, "app_not_found")
    finally:
        app.stop()
        server.close()


def test_an_unreachable_url_is_a_clear_error_kept_as_failing_and_synced_after_a_restart(
    tmp_path: Path,
) -> None:
    server, app = server_and_app(
        tmp_path, "appsync_app"
    )  # the app's port is chosen, nothing listens there yet
    try:
        server.start_and_wait()
        response = add(server, app.url)
        assert response.status_code == 502, response.text
        body = response.json()
        assert body["code"] == "app_sync_failed"
        assert body["error"].startswith("unreachable: ")
        assert body["sync"]["status"] == "failing"
        kept = syncs(server)[app.url]
        assert kept["status"] == "failing" and kept["error"] == body["error"]
        assert kept["added_at"] is not None and kept["app_name"] is None

        # The URL is durable: after a restart the server still syncs it, and once the app
        # is up it is synced without being added again.
        server.stop()
        server.start_and_wait()
        app.start_and_wait()
        assert_synced_by_polling(server, app.url)
        assert syncs(server)[app.url]["app_name"] == "appsync"
    finally:
        app.stop()
        server.close()


def test_bad_bodies_and_urls_are_refused_with_the_reason(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, sdk_urls=[])
    try:
        server.start_and_wait()
        for body in ({}, {"url": 5}, {"url": "x", "more": 1}, [1]):
            response = server.http.post("/v1/apps", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["code"] == "invalid_app_url"
        for url in ("ftp://example.com/api/inngest", "/api/inngest", "http://"):
            response = add(server, url)
            assert response.status_code == 400, (url, response.text)
            assert url in response.json()["error"]
        assert syncs(server) == {}
    finally:
        server.close()


def test_an_invalid_config_an_app_registers_is_kept_as_its_last_error(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, sdk_urls=[])
    url = "http://127.0.0.1:9/api/inngest"
    function = {
        "id": "cron",
        "triggers": [{"cron": "0 0 31 2 *"}],
        "steps": {"step": {"id": "step", "runtime": {"type": "http", "url": url}}},
    }
    try:
        server.start_and_wait()
        response = server.http.post(
            "/fn/register", json={"url": url, "appName": "broken", "functions": [function]}
        )
        assert response.status_code == 400, response.text
        kept = syncs(server)[url]
        assert kept["status"] == "failing" and kept["app_name"] == "broken"
        assert kept["error"] == response.json()["error"] and "cron" in kept["error"]
    finally:
        server.close()


def test_in_production_a_private_url_is_refused_and_not_kept(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, sdk_urls=[])
    server.production(signing_key=SIGNING_KEY, event_key="apps-event-key")
    try:
        server.start_and_wait()
        for url in ("http://127.0.0.1:9/api/inngest", "http://10.1.2.3/api/inngest"):
            response = add(server, url)
            assert response.status_code == 400, response.text
            assert response.json()["code"] == "url_refused"
            assert "production" in response.json()["error"]
        assert syncs(server) == {}
        unauthenticated = httpx.post(f"{server.url}/v1/apps", json={"url": "http://example.com/"})
        assert unauthenticated.status_code == 401
    finally:
        server.close()


@pytest.mark.backends("postgres")  # nodes share a database only on PostgreSQL
def test_a_url_added_on_one_node_is_synced_by_another(tmp_path: Path, pg_uri: str) -> None:
    port = free_port()
    # The app registers with the second node: the first is gone by the time it starts.
    app = AppProcess(tmp_path, "appsync_app", server_url=f"http://127.0.0.1:{port}")
    first = ServerProcess(tmp_path, sdk_urls=[], postgres_uri=pg_uri)
    second = ServerProcess(tmp_path, sdk_urls=[], port=port, postgres_uri=pg_uri)
    try:
        first.start_and_wait()
        second.start_and_wait()
        assert add(first, app.url).status_code == 502  # not up yet
        first.stop()
        app.start_and_wait()
        assert_synced_by_polling(second, app.url)
    finally:
        app.stop()
        first.close()
        second.close()


def test_an_app_with_another_signing_key_is_shown_failing_with_the_reason(tmp_path: Path) -> None:
    port = free_port()
    app = AppProcess(
        tmp_path,
        "appsync_app",
        server_url=f"http://127.0.0.1:{port}",
        extra_env={"STEPWISE_TEST_SIGNING_KEY": "signkey-prod-" + "99" * 32},
    )
    server = ServerProcess(tmp_path, port=port, sdk_urls=[app.url])  # the -u path
    server.production(signing_key=SIGNING_KEY, event_key="apps-event-key")
    try:
        app.start_and_wait()
        server.start_and_wait()
        kept = wait_until(lambda: syncs(server).get(app.url), timeout=20, what="a sync attempt")
        assert kept["status"] == "failing", kept
        assert "HTTP 401" in kept["error"] and "signing key" in kept["error"], kept
        assert server.http.get("/v1/apps").json()["data"] == []
    finally:
        app.stop()
        server.close()
