"""The bulk cancellations page and the events page's reasons, in a real headless Chromium
against a real dev server and app: preview a bulk cancellation of sleeping runs, confirm it
and see them Cancelled, delete it; an event that started no run says why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from support.browser import shot
from support.harness import Stack, wait_until


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "dashboard_app", functions=2) as s:
        yield s


def sleeping(stack: Stack, group: str, count: int) -> list[str]:
    events = [stack.server.send("dash/sleeper", {"group": group}) for _ in range(count)]
    run_ids = [
        wait_until(lambda e=e: stack.server.runs(e), timeout=20, what="the run")[0]["run_id"]
        for e in events
    ]
    for run_id in run_ids:
        wait_until(
            lambda r=run_id: any(h["kind"] == "SleepStarted" for h in stack.server.history(r)),
            timeout=20,
            what="the run to sleep",
        )
    return run_ids


def test_preview_then_confirm_a_bulk_cancellation_of_sleeping_runs(
    stack: Stack, page: Page
) -> None:
    base = stack.server.url
    chosen = sleeping(stack, "doomed", 3)
    spared = sleeping(stack, "kept", 1)

    page.goto(base + "/events")
    page.click("nav >> text=Cancel runs")
    expect(page).to_have_url(base + "/cancellations")
    expect(page.locator("#cancellations")).to_contain_text("No bulk cancellations")
    page.select_option("#bulk-cancel select[name=function]", "dashboard-sleeper")
    page.fill("#bulk-cancel input[name=if]", "event.data.group == 'doomed'")
    expect(page.locator("#bulk-cancel-confirm")).to_be_disabled()
    page.click("#bulk-cancel button[type=submit]")
    expect(page.locator("#bulk-cancel-result")).to_have_text("3 runs would be cancelled.")
    links = page.locator("#bulk-cancel-runs a.run-link")
    expect(links).to_have_count(3)
    assert sorted(links.all_inner_texts()) == sorted(chosen)
    shot(page, "cancellations-preview")
    # Nothing is cancelled by a preview.
    assert all(stack.server.run(r)["status"] == "Running" for r in chosen + spared)

    page.click("#bulk-cancel-confirm")
    expect(page.locator("#bulk-cancel-result")).to_contain_text("Created cancellation")
    row = page.locator("#cancellations tbody tr[data-cancellation-id]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("dashboard-sleeper")
    expect(row).to_contain_text("event.data.group == 'doomed'")
    shot(page, "cancellations-created")
    for run_id in chosen:
        assert stack.server.wait_for_run_end(run_id)["status"] == "Cancelled", stack.logs()
    assert stack.server.run(spared[0])["status"] == "Running"

    # The preview's links lead to the runs, now shown Cancelled.
    page.goto(f"{base}/runs/{chosen[0]}")
    expect(page.locator("h1 .status")).to_have_text("Cancelled")
    shot(page, "cancellations-run-cancelled")

    page.goto(base + "/cancellations")
    page.click("button[data-delete-cancellation]")
    expect(page.locator("#cancellations")).to_contain_text("No bulk cancellations")
    assert httpx.get(base + "/v1/cancellations").json()["data"] == []


def test_a_preview_that_matches_nothing_cannot_be_confirmed(stack: Stack, page: Page) -> None:
    page.goto(stack.server.url + "/cancellations")
    page.select_option("#bulk-cancel select[name=function]", "dashboard-greet")
    page.click("#bulk-cancel button[type=submit]")
    expect(page.locator("#bulk-cancel-result")).to_have_text("0 runs would be cancelled.")
    expect(page.locator("#bulk-cancel-confirm")).to_be_disabled()
    page.fill("#bulk-cancel input[name=if]", "event.data.x ==")
    page.click("#bulk-cancel button[type=submit]")
    expect(page.locator("#bulk-cancel-result")).to_contain_text("Refused:")
    expect(page.locator("#bulk-cancel-confirm")).to_be_disabled()
    shot(page, "cancellations-refused")
