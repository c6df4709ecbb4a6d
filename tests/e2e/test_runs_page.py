"""The Runs page (the dashboard's home) in a real headless Chromium against a real dev
server and app: statuses as a person reads them, filters, a CEL search, pages, and a run
seen going Queued, Running, Completed without reloading."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from stepwise.server.api.run_search import SCAN_LIMIT
from support.browser import shot
from support.harness import Stack, wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "runs_page_app", functions=6) as s:
        yield s


def send_many(stack: Stack, events: list[dict[str, object]]) -> list[str]:
    response = httpx.post(f"{stack.server.url}/e/k", json=events)
    response.raise_for_status()
    ids: list[str] = response.json()["ids"]
    return ids


def row_of(page: Page, function: str) -> Locator:
    return page.locator("#runs tbody tr", has_text=function)


def test_every_status_shown_and_filtered_by_status_and_function(stack: Stack, page: Page) -> None:
    server = stack.server
    order = server.wait_for_run(server.send("shop/order", {"customer": "acme", "items": [4, 5]}))
    refund = server.wait_for_run(server.send("shop/refund"))
    server.wait_for_run(server.send("shop/newsletter"))
    skipped = server.wait_for_run(server.send("shop/newsletter"))
    assert skipped["status"] == "Skipped"
    server.send("shop/nap")
    server.send("shop/await")

    base = server.url
    page.goto(base + "/")
    expect(page).to_have_url(base + "/runs")
    table = page.locator("#runs")
    expect(table.locator("tbody tr")).to_have_count(6)
    expect(row_of(page, "runs-nap").locator(".status")).to_have_text("Sleeping")
    expect(row_of(page, "runs-await-payment").locator(".status")).to_have_text("Waiting")
    expect(row_of(page, "runs-refund").locator(".status")).to_have_text("Failed")
    expect(row_of(page, "runs-order").locator(".status")).to_have_text("Completed")
    newsletter = page.locator("#runs tbody tr", has_text="runs-newsletter")
    expect(newsletter.locator(".status")).to_have_text(["Skipped", "Completed"])
    expect(newsletter.first.locator(".skip-reason")).not_to_be_empty()
    # Newest first: the last event sent is the first row.
    expect(table.locator("tbody tr").first).to_contain_text("runs-await-payment")
    expect(row_of(page, "runs-order")).to_contain_text("shop/order")
    shot(page, "runs-every-status")

    # Status filter, submitted with Enter from a text field of the form.
    page.check("#run-filters input[name=status][value=Failed]")
    page.locator("#run-filters input[name=event]").press("Enter")
    expect(page).to_have_url(re.compile(r"/runs\?status=Failed&"))
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr")).to_contain_text(refund["run_id"])
    expect(page.locator("#run-filters input[value=Failed]")).to_be_checked()
    shot(page, "runs-filtered-failed")

    page.check("#run-filters input[name=status][value=Completed]")
    page.click("#run-filters button[type=submit]")
    expect(table.locator("tbody tr")).to_have_count(3)

    # Sleeping and Waiting narrow Running: each box finds only its run.
    page.goto(base + "/runs")
    page.check("#run-filters input[name=status][value=Sleeping]")
    page.click("#run-filters button[type=submit]")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(row_of(page, "runs-nap").locator(".status")).to_have_text("Sleeping")
    page.uncheck("#run-filters input[name=status][value=Sleeping]")
    page.check("#run-filters input[name=status][value=Waiting]")
    page.click("#run-filters button[type=submit]")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(row_of(page, "runs-await-payment").locator(".status")).to_have_text("Waiting")
    shot(page, "runs-filtered-waiting")
    page.check("#run-filters input[name=status][value=Running]")
    page.click("#run-filters button[type=submit]")
    expect(table.locator("tbody tr")).to_have_count(2)

    page.goto(base + "/runs")
    page.select_option("#run-filters select[name=function]", "runs-order")
    page.click("#run-filters button[type=submit]")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator(".run-link")).to_have_text(order["run_id"])
    shot(page, "runs-filtered-function")

    # The event's name links to the runs it triggered; the run's id to its page.
    table.locator(".event-link").click()
    expect(page).to_have_url(re.compile(r"/runs\?event=[0-9A-Z]{26}$"))
    expect(table.locator("tbody tr")).to_have_count(1)
    table.locator(".run-link").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/runs/{order['run_id']}")
    expect(page.locator("h1 .status")).to_have_text("Completed")


def test_search_with_cel_a_match_and_a_bad_expression(stack: Stack, page: Page) -> None:
    server = stack.server
    send_many(
        stack,
        [
            {"name": "shop/order", "data": {"customer": "acme", "items": [20, 3]}},
            {"name": "shop/order", "data": {"customer": "acme", "items": [2, 3]}},
            {"name": "shop/order", "data": {"customer": "globex", "items": [50]}},
        ],
    )
    wait_until(
        lambda: (
            len(httpx.get(f"{server.url}/v1/runs", params={"status": "Completed"}).json()["data"])
            == 3
        ),
        timeout=30,
        what="three completed orders",
    )
    page.goto(server.url + "/runs")
    search = page.locator("#run-filters input[name=q]")
    search.fill('event.data.customer == "acme" && output.total > 10')
    search.press("Enter")
    table = page.locator("#runs")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page.locator("#search-summary")).to_contain_text("1 match in 3 runs looked at")
    run_id = table.locator(".run-link").inner_text()
    assert server.run(run_id)["output"] == {"customer": "acme", "total": 23}
    shot(page, "runs-search-match")

    search = page.locator("#run-filters input[name=q]")
    search.fill("event.data.customer ==")
    search.press("Enter")
    expect(page.locator("#runs-error")).to_contain_text("The search cannot run")
    expect(page.locator("#runs-error")).to_contain_text("event.data.customer ==")
    expect(page.locator("#run-filters input[name=q]")).to_have_value("event.data.customer ==")
    shot(page, "runs-search-bad-expression")


def test_older_pages_follow_the_cursor_and_only_the_first_is_live(stack: Stack, page: Page) -> None:
    server = stack.server
    send_many(stack, [{"name": "shop/order", "data": {"items": [i]}} for i in range(55)])
    wait_until(
        lambda: len(httpx.get(f"{server.url}/v1/runs", params={"limit": 100}).json()["data"]) == 55,
        timeout=30,
        what="55 runs",
    )
    page.goto(server.url + "/runs")
    table = page.locator("#runs")
    expect(table.locator("tbody tr")).to_have_count(50)
    expect(page.locator("#live")).to_have_attribute("data-live-topics", "runs")
    first_page = table.locator(".run-link").all_inner_texts()
    page.locator("#older").focus()
    page.keyboard.press("Enter")
    expect(table.locator("tbody tr")).to_have_count(5)
    expect(page.locator("#older")).to_have_count(0)
    assert page.locator("#live").get_attribute("hx-get") is None
    second_page = table.locator(".run-link").all_inner_texts()
    assert not set(first_page) & set(second_page)
    listed = httpx.get(f"{server.url}/v1/runs", params={"limit": 100}).json()["data"]
    assert first_page + second_page == [r["run_id"] for r in listed]
    shot(page, "runs-older-page")


def test_a_run_goes_queued_running_completed_live(stack: Stack, page: Page) -> None:
    server = stack.server
    page.goto(server.url + "/runs")
    expect(page.locator("#runs")).to_contain_text("No runs yet")
    shot(page, "runs-empty")

    first = server.send("shop/gated", {"n": 1})
    second = server.send("shop/gated", {"n": 2})
    # One at a time: the first run holds its step open, the second waits for the slot.
    rows = page.locator("#runs tbody tr")
    expect(rows.locator(".status")).to_have_text(["Queued", "Running"])
    shot(page, "runs-queued-running")
    # The run's own page agrees: its first call is under way, though the API says Scheduled.
    running = page.locator("#runs tbody tr", has_text="Running").locator(".run-link")
    running_id = running.inner_text()
    assert server.run(running_id)["status"] == "Scheduled"
    running.click()
    expect(page.locator("h1 .status")).to_have_text("Running")
    page.go_back()

    stack.app.ledger.with_name(stack.app.ledger.name + ".open").touch()
    expect(rows.locator(".status")).to_have_text(["Completed", "Completed"])
    shot(page, "runs-completed-live")
    for event_id in (first, second):
        assert server.runs(event_id)[0]["status"] == "Completed"


def test_a_search_stops_at_its_bound_and_keeps_searching_on_request(
    stack: Stack, page: Page
) -> None:
    server = stack.server
    # One newsletter a hour: the first event starts a run, every other one a Skipped run
    # (cheap to make: no call to the app), the needle being the oldest of all.
    server.wait_for_run(server.send("shop/newsletter", {"n": 0}))
    total = SCAN_LIMIT + 30
    for start in range(1, total, 500):
        batch = range(start, min(total, start + 500))
        send_many(stack, [{"name": "shop/newsletter", "data": {"n": n}} for n in batch])
    wait_until(
        lambda: (
            stack.server.http.get("/v1/runs", params={"q": "event.data.n == 0"}).json()["metadata"][
                "scanned"
            ]
            == SCAN_LIMIT
        ),
        timeout=60,
        what="every run stored",
    )
    page.goto(server.url + "/runs")
    search = page.locator("#run-filters input[name=q]")
    search.fill("event.data.n == 0")
    search.press("Enter")
    summary = page.locator("#search-summary")
    expect(summary).to_contain_text(f"0 matches in {SCAN_LIMIT} runs looked at")
    expect(summary).to_contain_text(f"the search stopped after {SCAN_LIMIT} runs")
    expect(page.locator("#runs")).to_contain_text("No run matches in this stretch")
    expect(page.locator("#older")).to_have_count(0)
    shot(page, "runs-search-stopped-early")

    summary.get_by_role("link", name="keep searching").click()
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator("#search-summary")).to_contain_text("1 match in 30 runs looked at")
    expect(page.locator("#runs .status")).to_have_text("Completed")
    shot(page, "runs-search-kept-searching")
