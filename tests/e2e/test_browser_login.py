"""The dashboard of a production server (``stepwise start``) in a real headless Chromium:
log in, use the pages (their requests carry the session's CSRF token), log out.
Every page visited is saved as a screenshot in artifacts/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from support.api_keys import create_key
from support.browser import shot
from support.harness import Stack

SIGNING_KEY = "signkey-prod-" + "a1" * 32


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(
        tmp_path_factory.mktemp("dashboard-production"),
        "dashboard_app",
        app_env={"STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY},
        functions=2,
    )
    s.server.production(signing_key=SIGNING_KEY, event_key="e2e-event-key")
    with s:
        yield s


def log_in(page: Page, password: str) -> None:
    page.fill("#login input[name=password]", password)
    page.click("#login button[type=submit]")


def test_log_in_with_an_api_key_see_the_events_and_send_one(stack: Stack, page: Page) -> None:
    base = stack.server.url
    stack.server.wait_for_run(stack.server.send("dash/greet", {"who": "Grace"}))
    _, key = create_key(stack.server, "e2e")

    page.goto(base + "/functions")
    expect(page).to_have_url(base + "/login?next=%2Ffunctions")
    expect(page.locator("nav")).to_have_count(0)
    shot(page, "production-login")
    log_in(page, key)
    expect(page).to_have_url(base + "/functions")
    expect(page.locator("#functions tbody tr")).to_have_count(2)
    shot(page, "production-functions")

    page.click("nav >> text=Events")
    # Rows of the event itself (a function.finished event holds its name in its data).
    greetings = page.locator("#events tbody tr:has(strong:text-is('dash/greet'))")
    expect(greetings.locator(".status")).to_have_text(["Completed"])
    # The form sends with no event key in the page: the session stands in for one.
    page.fill("#send-event input[name=name]", "dash/greet")
    page.fill("#send-event textarea[name=data]", '{"who": "Ada"}')
    page.click("#send-event button[type=submit]")
    expect(page.locator("#send-result")).to_contain_text("Sent: ")
    expect(greetings.locator(".status")).to_have_text(["Completed", "Completed"])
    shot(page, "production-events")

    page.click("#logout button")
    expect(page).to_have_url(base + "/login")
    page.goto(base + "/events")
    expect(page).to_have_url(base + "/login?next=%2Fevents")


def test_a_wrong_password_is_refused_on_the_page(stack: Stack, page: Page) -> None:
    page.goto(stack.server.url + "/events")
    log_in(page, "not-the-key")
    expect(page.locator("#login-error")).to_contain_text("Wrong password")
    expect(page).to_have_url(stack.server.url + "/login")
    expect(page.locator("#login input[name=next]")).to_have_value("/events")
    shot(page, "production-login-refused")


def test_cancel_a_run_in_production(stack: Stack, page: Page) -> None:
    event_id = stack.server.send("dash/sleeper")
    page.goto(stack.server.url + "/events")
    log_in(page, SIGNING_KEY)
    page.locator("#events tbody tr:has(strong:text-is('dash/sleeper'))").locator(
        "a.run-link"
    ).click()
    expect(page.locator("h1 .status")).to_have_text("Sleeping")
    shot(page, "production-run-sleeping")

    # The cancel button's DELETE is authenticated by the session, with its CSRF token.
    with page.expect_request(lambda r: r.method == "DELETE") as cancel:
        page.click("button[data-cancel-run]")
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert token and cancel.value.headers["x-csrf-token"] == token
    expect(page.locator("h1 .status")).to_have_text("Cancelled")
    shot(page, "production-run-cancelled")
    runs = stack.server.http.get(f"/v1/events/{event_id}/runs").json()["data"]
    assert [r["status"] for r in runs] == ["Cancelled"]

    # Rerun, from the same page: a POST with the token too, then the new run's page.
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/rerun")) as rerun:
        page.click("button[data-rerun]:not([data-from-step])")
    assert rerun.value.headers["x-csrf-token"] == token
    expect(page.locator("h1 .status")).to_have_text("Sleeping")
    assert page.url.rstrip("/").rsplit("/", 1)[-1] != runs[0]["run_id"]
    shot(page, "production-run-rerun")


def test_a_live_page_goes_to_the_login_when_its_session_ends(stack: Stack, page: Page) -> None:
    base = stack.server.url
    page.goto(base + "/events")
    log_in(page, SIGNING_KEY)
    expect(page).to_have_url(base + "/events")
    # As if the cookie expired: the page's next refresh (every 2 s) loads the login page
    # instead of swapping it into the table.
    page.context.clear_cookies()
    # The page's next refresh (the live feed's, or its 10 s fallback) finds no session.
    expect(page).to_have_url(base + "/login?next=%2Fevents", timeout=20_000)
    expect(page.locator("#login input[name=password]")).to_be_visible()
    expect(page.locator("#events")).to_have_count(0)
