"""The dashboard in a real headless Chromium (the machine's, driven by Playwright), against a
real dev server and app: send an event, watch its run complete live, read the timeline,
cancel a sleeping run. Every page visited is saved as a screenshot in artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from support.browser import shot
from support.harness import Stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "dashboard_app", functions=2) as s:
        yield s


def test_send_an_event_watch_its_run_complete_and_read_its_timeline(
    stack: Stack, page: Page
) -> None:
    base = stack.server.url
    page.goto(base + "/events")
    expect(page.locator("#events")).to_contain_text("No events yet")
    shot(page, "events-empty")

    page.fill("#send-event input[name=name]", "dash/greet")
    page.fill("#send-event textarea[name=data]", '{"who": "Ada"}')
    page.click("#send-event button[type=submit]")
    expect(page.locator("#send-result")).to_contain_text("Sent: ")

    # The table refreshes by itself: the run appears, then shows Completed.
    row = page.locator("#events tbody tr", has_text="dash/greet")
    expect(row.locator("a.run-link")).to_have_text("dashboard-greet")
    expect(row.locator(".status")).to_have_text("Completed")
    shot(page, "events-run-completed")

    row.locator("a.run-link").click()
    expect(page.locator("h1 .status")).to_have_text("Completed")
    timeline = page.locator("#timeline")
    for step in ("who", "compose", "shout"):
        expect(timeline.locator("tr.kind-StepCompleted", has_text=step)).to_have_count(1)
    expect(timeline.locator("tr.kind-RunCompleted")).to_have_count(1)
    expect(page.locator("#run-output")).to_contain_text('"HELLO ADA"')
    function = page.locator("#run-function")
    expect(function.locator("a")).to_have_attribute("href", "/functions/dashboard-greet")
    expect(function.locator("pre")).to_contain_text('"event": "dash/greet"')
    expect(page.locator(".card", has_text="dash/greet")).to_contain_text('"who": "Ada"')
    shot(page, "run-completed")


def test_rerun_a_run_and_rerun_it_from_a_step(stack: Stack, page: Page) -> None:
    base = stack.server.url
    original = stack.server.wait_for_run(stack.server.send("dash/greet", {"who": "Bo"}))
    page.goto(f"{base}/runs/{original['run_id']}")
    expect(page.locator("h1 .status")).to_have_text("Completed")

    page.click("button[data-rerun]:not([data-from-step])")
    # The page of the new run: a rerun of the original, ending as it did.
    expect(page).not_to_have_url(f"{base}/runs/{original['run_id']}")
    expect(page.locator("#original-run")).to_have_text(original["run_id"])
    expect(page.locator("h1 .status")).to_have_text("Completed")
    expect(page.locator("#run-output")).to_contain_text('"HELLO BO"')
    shot(page, "run-rerun")
    rerun_id = page.locator("#run-id").inner_text()
    assert rerun_id != original["run_id"]
    assert stack.server.run(rerun_id)["original_run_id"] == original["run_id"]

    page.goto(f"{base}/runs/{original['run_id']}")
    compose = page.locator("#timeline tr.kind-StepCompleted", has_text="compose")
    compose.locator("button.rerun-from").click()
    expect(page).not_to_have_url(f"{base}/runs/{original['run_id']}")
    expect(page.locator("h1 .status")).to_have_text("Completed")
    expect(page.locator("#original-run")).to_have_text(original["run_id"])
    timeline = page.locator("#timeline")
    for step in ("who", "compose", "shout"):
        expect(timeline.locator("tr.kind-StepCompleted", has_text=step)).to_have_count(1)
    # Only the steps from "compose" on were executed again: "who" was copied.
    expect(timeline.locator("tr.kind-StepCompleted", has_text="who")).to_contain_text(
        original["run_id"]
    )
    expect(page.locator("#run-output")).to_contain_text('"HELLO BO"')
    shot(page, "run-rerun-from-step")
    from_step_id = page.locator("#run-id").inner_text()
    history = stack.server.history(from_step_id)
    copied = [e["name"] for e in history if e.get("copied_from_run_id") == original["run_id"]]
    assert copied == ["who"]
    executed = [e["name"] for e in history if e["kind"] == "StepCompleted" and e["attempt"] == 0]
    assert executed == ["compose", "shout"]


def test_invalid_json_is_refused_before_anything_is_sent(stack: Stack, page: Page) -> None:
    page.goto(stack.server.url + "/events")
    page.fill("#send-event input[name=name]", "dash/greet")
    page.fill("#send-event textarea[name=data]", '{"who": ')
    page.click("#send-event button[type=submit]")
    expect(page.locator("#send-result")).to_contain_text("not valid JSON")
    page.fill("#send-event textarea[name=data]", "[1, 2]")
    page.click("#send-event button[type=submit]")
    expect(page.locator("#send-result")).to_contain_text("must be a JSON object")
    shot(page, "events-invalid-json")
    assert httpx.get(stack.server.url + "/v1/events").json()["data"] == []


def test_cancel_a_sleeping_run(stack: Stack, page: Page) -> None:
    event_id = stack.server.send("dash/sleeper")
    page.goto(stack.server.url + "/events")
    page.locator("#events tbody tr", has_text="dash/sleeper").locator("a.run-link").click()
    expect(page.locator("h1 .status")).to_have_text("Sleeping")
    expect(page.locator("#timeline tr.kind-SleepStarted", has_text="nap")).to_have_count(1)
    shot(page, "run-sleeping")

    page.click("button[data-cancel-run]")
    expect(page.locator("h1 .status")).to_have_text("Cancelled")
    expect(page.locator("button[data-cancel-run]")).to_have_count(0)
    shot(page, "run-cancelled")
    runs = httpx.get(f"{stack.server.url}/v1/events/{event_id}/runs").json()["data"]
    assert [r["status"] for r in runs] == ["Cancelled"]


def test_functions_and_apps_pages(stack: Stack, page: Page) -> None:
    page.goto(stack.server.url + "/functions")
    table = page.locator("#functions")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("dashboard-greet")
    expect(table).to_contain_text("dash/sleeper")
    shot(page, "functions")

    page.goto(stack.server.url + "/apps")
    row = page.locator("#apps tbody tr", has_text="dashboard")
    expect(row).to_contain_text(stack.app.url)
    expect(row.locator("td").nth(3)).to_have_text("2")
    shot(page, "apps")


def test_an_unknown_run_says_so(stack: Stack, page: Page) -> None:
    page.goto(stack.server.url + "/runs/01JABCDEFGHJKMNPQRSTVWXYZ0")
    expect(page.locator("h1")).to_have_text("No such run")
    shot(page, "run-missing")
