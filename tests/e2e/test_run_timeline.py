"""A run's page in a real headless Chromium: a step.fetch shown as one, with its request
and answer; a step output too large to show at once, read a part at a time to its end."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from support.browser import shot
from support.harness import Stack

BIG_LINES = 3000  # as in apps/timeline_app.py


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("timeline"), "timeline_app", functions=1) as s:
        yield s


@pytest.fixture(scope="module")
def report(stack: Stack) -> dict[str, object]:
    run = stack.server.wait_for_run(stack.server.send("timeline/report"))
    assert run["status"] == "Completed", stack.logs()
    assert run["output"] == {"health": 200, "rows": BIG_LINES}
    return run


def test_a_fetch_shows_its_request_and_answer_and_no_secret(
    stack: Stack, report: dict[str, object], page: Page
) -> None:
    page.goto(f"{stack.server.url}/runs/{report['run_id']}")
    timeline = page.locator("#timeline")
    planned = timeline.locator("tr", has=page.locator("td", has_text=re.compile("^Fetch$")))
    expect(planned.locator(".fetch-request")).to_have_text(f"GET {stack.server.url}/health")
    answered = timeline.locator("tr", has_text="Fetched 200")
    expect(answered).to_have_count(1)
    answered.locator("details summary", has_text="output").click()
    expect(answered.locator("pre")).to_contain_text('"status_code": 200')
    # The query may hold a secret: the history does not keep it (the answer, which the
    # protocol gives the app, is the step's output, stored as it is).
    planned_row = planned.inner_text()
    assert "secret-token" not in planned_row
    history = stack.server.history(str(report["run_id"]))
    kept = [{k: v for k, v in entry.items() if k != "output"} for entry in history]
    assert "secret-token" not in json.dumps(kept)
    [fetch] = [e["fetch"] for e in history if "fetch" in e]
    assert fetch == {"method": "GET", "url": f"{stack.server.url}/health"}
    shot(page, "run-fetch")


def test_a_large_output_is_read_a_part_at_a_time(
    stack: Stack, report: dict[str, object], page: Page
) -> None:
    whole = json.dumps([f"row {i:05d}" for i in range(BIG_LINES)], indent=2)
    page.goto(f"{stack.server.url}/runs/{report['run_id']}")
    row = page.locator("#timeline tr.kind-StepCompleted", has_text="rows")
    output = row.locator("details.json")
    expect(output.locator("summary")).to_contain_text(f"({len(whole):,} characters)")
    output.locator("summary").click()
    expect(output.locator("pre").first).to_contain_text('"row 00000"')
    expect(output.locator("pre").first).not_to_contain_text(f'"row {BIG_LINES - 1:05d}"')
    shot(page, "run-large-output-first-part")
    parts = 1
    while output.locator("button.more").count():
        output.locator("button.more").click()
        parts += 1
        expect(output.locator("pre")).to_have_count(parts)
    assert parts == -(-len(whole) // 20_000)
    texts = output.locator("pre").all_inner_texts()
    assert "".join(texts) == whole
    shot(page, "run-large-output-every-part")


def test_a_part_out_of_range_or_of_nothing_is_a_404(
    stack: Stack, report: dict[str, object]
) -> None:
    http = stack.server.http
    run_id = report["run_id"]
    step_url = next(
        m
        for m in re.findall(r'hx-get="([^"]+)"', http.get(f"/runs/{run_id}").text)
        if "of=step:" in m
    )
    assert http.get(step_url.replace("&amp;", "&")).status_code == 200
    base = step_url.replace("&amp;", "&").split("&part=")[0]
    for bad in (f"{base}&part=0", f"{base}&part=99", f"{base}&part=x", base):
        assert http.get(bad).status_code == 404, bad
    for of in ("nothing", "step:nope", "entry:999", "input:0", "event:01ARZ3NDEKTSV4RRFFQ69G5FAV"):
        assert http.get(f"/runs/{run_id}/value?of={of}&part=1").status_code == 404, of
    assert http.get("/runs/not-a-run/value?of=output&part=1").status_code == 404
    assert http.get("/events/not-an-event/value?of=data&part=1").status_code == 404


def go(page: Page, key: str, url: str) -> None:
    """ "g" then ``key``: the page at ``url``, loaded (its keys work once its script ran)."""
    page.keyboard.press("g")
    page.keyboard.press(key)
    expect(page).to_have_url(url)
    page.wait_for_load_state()


def test_the_keyboard_reaches_every_page_field_and_row(
    stack: Stack, report: dict[str, object], page: Page
) -> None:
    base = stack.server.url
    page.goto(base + "/runs")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    shot(page, "keyboard-shortcuts")
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts")).to_be_hidden()

    go(page, "e", base + "/events")
    page.keyboard.press("/")
    expect(page.locator("#send-event input[name=name]")).to_be_focused()
    # Keys typed into a field are the field's; Escape leaves it.
    page.keyboard.type("g/r")
    expect(page.locator("#send-event input[name=name]")).to_have_value("g/r")
    page.keyboard.press("Escape")
    expect(page.locator("#send-event input[name=name]")).not_to_be_focused()

    go(page, "r", base + "/runs")
    page.keyboard.press("/")
    expect(page.locator("#run-filters input[name=q]")).to_be_focused()
    page.keyboard.press("Escape")
    row = page.locator("#runs tbody tr").first
    page.keyboard.press("j")
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("j")  # the last row stays selected
    page.keyboard.press("k")
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    shot(page, "keyboard-row-selected")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/runs/{report['run_id']}")
    page.wait_for_load_state()
    go(page, "f", base + "/functions")
    page.keyboard.press("j")
    page.keyboard.press("o")
    expect(page).to_have_url(base + "/functions/timeline-report")
    page.wait_for_load_state()
