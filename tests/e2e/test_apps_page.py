"""The apps page in a real headless Chromium: add an app by its URL and see its functions,
see a URL that cannot be synced shown as failing with the reason, resync an app after it
changed; in production, the same from a logged-in session (its requests carry the CSRF
token). Every page visited is saved as a screenshot in artifacts/."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from support.api_keys import create_key
from support.browser import shot
from support.harness import free_port, server_and_app

SIGNING_KEY = "signkey-prod-" + "7e" * 32


def add_app(page: Page, url: str) -> None:
    page.fill("#add-app input[name=url]", url)
    page.click("#add-app button[type=submit]")


def test_add_an_app_by_url_see_a_failing_url_and_resync(tmp_path: Path, page: Page) -> None:
    server, app = server_and_app(tmp_path, "appsync_app")
    try:
        app.start_and_wait()
        server.start_and_wait()
        page.goto(server.url + "/apps")
        expect(page.locator("#apps")).to_contain_text("No apps synced yet")
        shot(page, "apps-empty")

        add_app(page, app.url)
        expect(page.locator("#apps-result")).to_have_text("Synced appsync: 1 function")
        row = page.locator("#apps tbody tr[data-app=appsync]")
        expect(row).to_contain_text(app.url)
        expect(row.locator(".fn-list li")).to_have_text(["appsync-first"])
        expect(row.locator(".fn-count")).to_have_text("1")
        expect(row.locator(".sdk")).to_contain_text("py ")
        expect(row.locator(".status")).to_have_text("ok")
        shot(page, "apps-added")

        # Nothing listens there: the form says why, and the table keeps the URL as failing.
        nowhere = f"http://127.0.0.1:{free_port()}/api/inngest"
        add_app(page, nowhere)
        expect(page.locator("#apps-result")).to_contain_text("Sync failed: unreachable")
        failing = page.locator("#apps tbody tr", has_text=nowhere)
        expect(failing.locator(".status")).to_have_text("failing")
        expect(failing.locator(".sync-error")).to_contain_text("unreachable")
        shot(page, "apps-failing")

        # The app changes: Resync picks up its new function and the time of the sync.
        app.stop()
        app.env["STEPWISE_TEST_GROWN"] = "1"
        app.start_and_wait()
        before = row.locator("time").get_attribute("datetime")
        row.locator("button[data-resync-app]").click()
        expect(page.locator("#apps-result")).to_have_text("Synced appsync: 2 functions")
        expect(row.locator(".fn-list li")).to_have_text(["appsync-first", "appsync-second"])
        expect(row.locator(".fn-count")).to_have_text("2")
        expect(row.locator("time")).not_to_have_attribute("datetime", before or "")
        shot(page, "apps-resynced")

        # The app goes away: Resync says why, and the row shows it failing.
        app.stop()
        row.locator("button[data-resync-app]").click()
        expect(page.locator("#apps-result")).to_contain_text("Sync failed: unreachable")
        expect(row.locator(".status")).to_have_text("failing")
        expect(row.locator(".sync-error")).to_contain_text("unreachable")
        expect(row.locator("time.synced")).to_have_count(1)
        shot(page, "apps-resync-failing")
    finally:
        app.stop()
        server.close()


def test_add_an_app_by_url_in_production(tmp_path: Path, page: Page) -> None:
    server, app = server_and_app(tmp_path, "appsync_app", STEPWISE_TEST_SIGNING_KEY=SIGNING_KEY)
    server.production(signing_key=SIGNING_KEY, event_key="apps-event-key")
    # The app listens on loopback, which the outbound guard refuses unless allowed.
    server.args += ["--outbound-allow", "127.0.0.0/8"]
    try:
        app.start_and_wait()
        server.start_and_wait()
        _, key = create_key(server, "apps")
        page.goto(server.url + "/apps")
        page.fill("#login input[name=password]", key)
        page.click("#login button[type=submit]")
        expect(page).to_have_url(server.url + "/apps")

        with page.expect_request(
            lambda r: r.method == "POST" and r.url.endswith("/v1/apps")
        ) as sent:
            add_app(page, app.url)
        token = page.locator("meta[name=csrf-token]").get_attribute("content")
        assert token and sent.value.headers["x-csrf-token"] == token
        expect(page.locator("#apps-result")).to_have_text("Synced appsync: 1 function")
        row = page.locator("#apps tbody tr[data-app=appsync]")
        expect(row.locator(".status")).to_have_text("ok")

        with page.expect_request(lambda r: r.url.endswith("/resync")) as resync:
            row.locator("button[data-resync-app]").click()
        assert resync.value.headers["x-csrf-token"] == token
        expect(page.locator("#apps-result")).to_have_text("Synced appsync: 1 function")
        shot(page, "production-apps")
    finally:
        app.stop()
        server.close()
