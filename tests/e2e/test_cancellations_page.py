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
from support.sleepers import sleeping_runs


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "dashboard_app", functions=2) as s:
        yield s


def test_preview_then_confirm_a_bulk_cancellation_of_sleeping_runs(
    stack: Stack, page: Page
) -> None:
    base = stack.server.url
    chosen = sleeping_runs(stack.server, "doomed", 3)
    spared = sleeping_runs(stack.server, "kept", 1)

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


@pytest.fixture
def fates(tmp_path: Path) -> Iterator[Stack]:
    with Stack(tmp_path, "fates_app", functions=4) as s:
        yield s


def test_an_event_that_started_no_run_says_why(fates: Stack, page: Page) -> None:
    server = fates.server
    nobody = server.send("fates/nobody")
    refused = server.send("fates/guarded", {"ok": False})
    replaced = server.send("fates/debounced", {"n": 1})
    held = server.send("fates/debounced", {"n": 2})
    waiting = server.send("fates/batched")
    first = server.send("fates/plain", id="order-7")
    repeated = server.send("fates/plain", id="order-7")
    [first_run] = wait_until(lambda: server.runs(first), timeout=20, what="the first run")
    seed = "1764590000000,AAECAwQFBgcICQ=="
    copies = [
        httpx.post(
            f"{server.url}/e/k",
            json=[{"name": "fates/plain", "data": {}}],
            headers={"x-inngest-event-id-seed": seed},
        ).json()["ids"][0]
        for _ in range(2)
    ]
    assert copies[0] == copies[1]

    page.goto(server.url + "/events")

    def why(event_id: str) -> str:
        return page.locator(f"#events tr[data-event-id='{event_id}'] .why-no-run").first

    expect(why(nobody)).to_have_text("no function is triggered by fates/nobody")
    expect(why(refused)).to_contain_text(
        "fates-guarded: its trigger's if expression is false for this event"
    )
    expect(why(replaced)).to_contain_text(
        "fates-debounced: debounced: another event with the same debounce key took its place"
    )
    expect(why(held)).to_contain_text("fates-debounced: held by debounce")
    expect(why(waiting)).to_contain_text("fates-batched: waiting in a batch")
    dedup = why(repeated)
    expect(dedup).to_contain_text(
        "fates-plain: deduplicated: an event with the same id 'order-7' already started a run"
    )
    expect(dedup.locator("a.run-link")).to_have_attribute("href", f"/runs/{first_run['run_id']}")
    # The first copy of the seeded send started a run; the second copy is its repeat.
    copy_rows = page.locator(f"#events tr[data-event-id='{copies[0]}']")
    expect(copy_rows).to_have_count(2)
    expect(copy_rows.locator(".why-no-run")).to_contain_text(
        "a repeated copy of an event already received"
    )
    expect(copy_rows.locator("a.run-link")).to_have_count(1)
    shot(page, "events-why-no-run")
    # What the page said of the held events is true: none of them has a run.
    for event_id in (nobody, refused, replaced, held, waiting, repeated):
        assert server.runs(event_id) == []


SIGNING_KEY = "signkey-prod-" + "b2" * 32


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(
        tmp_path,
        "dashboard_app",
        app_env={"STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY},
        functions=2,
    )
    s.server.production(signing_key=SIGNING_KEY, event_key="e2e-event-key")
    with s:
        yield s


def test_a_bulk_cancellation_in_production_sends_the_csrf_token(
    production: Stack, page: Page
) -> None:
    base = production.server.url
    [run_id] = sleeping_runs(production.server, "prod", 1)
    page.goto(base + "/cancellations")
    expect(page).to_have_url(base + "/login?next=%2Fcancellations")
    page.fill("#login input[name=password]", SIGNING_KEY)
    page.click("#login button[type=submit]")
    expect(page).to_have_url(base + "/cancellations")
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert token

    page.select_option("#bulk-cancel select[name=function]", "dashboard-sleeper")
    with page.expect_request(lambda r: r.url.endswith("/v1/cancellations/preview")) as preview:
        page.click("#bulk-cancel button[type=submit]")
    assert preview.value.headers["x-csrf-token"] == token
    expect(page.locator("#bulk-cancel-result")).to_have_text("1 run would be cancelled.")
    with page.expect_request(lambda r: r.url.endswith("/v1/cancellations")) as create:
        page.click("#bulk-cancel-confirm")
    assert create.value.headers["x-csrf-token"] == token
    expect(page.locator("#cancellations tbody tr[data-cancellation-id]")).to_have_count(1)
    assert production.server.wait_for_run_end(run_id)["status"] == "Cancelled"
    shot(page, "production-cancellations")

    with page.expect_request(lambda r: r.method == "DELETE") as delete:
        page.click("button[data-delete-cancellation]")
    assert delete.value.headers["x-csrf-token"] == token
    expect(page.locator("#cancellations")).to_contain_text("No bulk cancellations")
