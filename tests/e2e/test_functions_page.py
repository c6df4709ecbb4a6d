"""The Functions pages in a real headless Chromium against a real server and app: the list
tells each function's configuration in words, a function's page charts its runs and
invokes it with a payload (refusing JSON that is not an object before sending anything),
in dev mode and behind a production login. Every page visited is saved in artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from support.api_keys import create_key
from support.browser import shot
from support.harness import Stack

SIGNING_KEY = "signkey-prod-" + "b2" * 32


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("functions-page"), "functions_app", functions=3) as s:
        yield s


def invoke_now(stack: Stack, data: dict[str, object]) -> str:
    response = stack.server.http.post("/v1/functions/fns-echo/invoke", json={"data": data})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["data"]["run_id"]
    return run_id


def test_the_list_tells_each_functions_configuration(stack: Stack, page: Page) -> None:
    page.goto(stack.server.url + "/functions")
    table = page.locator("#functions")
    expect(table.locator("tbody tr")).to_have_count(3)

    configured = table.locator("tr[data-function=fns-configured]")
    triggers = configured.locator("td").nth(2)
    expect(triggers).to_contain_text("event fns/order.placed if event.data.total > 100")
    expect(triggers).to_contain_text("cron TZ=Europe/Paris 0 5 * * 1-5")
    settings = configured.locator("dl.settings")
    for text in (
        "Concurrency",
        "at most 2 steps at once per event.data.user",
        "at most 10 steps at once",
        "Throttle",
        "5 runs per 1m (burst 2); later runs wait their turn",
        "Rate limit",
        "100 runs per 1h per event.data.user; events over it start no run",
        "Debounce",
        "one run 10s after the last event (at most 1m after the first)",
        "Priority",
        "event.data.vip ? 60 : 0 seconds ahead of other runs",
        "Singleton",
        "one run at a time per event.data.user; a new run cancels the running one",
        "2 retries (3 attempts)",
        "on event fns/order.cancelled if event.data.order_id == async.data.order_id within 1h",
        "cancelled if not started within 30s",
        "cancelled if not finished within 5m",
    ):
        expect(settings).to_contain_text(text)
    # The configuration as synced is there too, folded.
    raw = configured.locator("details.json")
    expect(raw.locator("pre")).not_to_be_visible()
    raw.locator("summary").click()
    expect(raw.locator("pre")).to_contain_text('"rateLimit"')

    batched = table.locator("tr[data-function=fns-batched] dl.settings")
    expect(batched).to_contain_text("up to 5 events per run, or what came within 1m")
    expect(batched).to_contain_text("one run per event.data.user in 24 hours")
    echo = table.locator("tr[data-function=fns-echo] dl.settings")
    expect(echo.locator("dt")).to_have_text(["Retries"])
    expect(echo.locator("dd")).to_have_text(["4 retries (5 attempts)"])
    shot(page, "functions-list")


def test_a_functions_page_charts_its_runs_and_invokes_it(stack: Stack, page: Page) -> None:
    server = stack.server
    ran = [invoke_now(stack, {"wait_ms": 50 * i}) for i in range(4)]
    ran.append(invoke_now(stack, {"fail": True}))
    for run_id in ran:
        server.wait_for_run_end(run_id)

    page.goto(server.url + "/functions")
    page.locator("tr[data-function=fns-echo] a.function-link").click()
    expect(page).to_have_url(server.url + "/functions/fns-echo")
    for window in ("last_hour", "last_day"):
        figure = page.locator(f"#chart-{window}")
        # uPlot drew it: a canvas, and the page recorded how many runs it holds.
        expect(figure.locator("canvas")).to_have_count(1)
        expect(figure).to_have_attribute("data-drawn", str(len(ran)))
        expect(figure.locator("[data-field=p95]")).to_contain_text(" ms")
        expect(figure.locator(".u-legend")).to_contain_text("Failed")
    box = page.locator("#chart-last_hour canvas").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    expect(page.locator("#recent-runs tbody tr")).to_have_count(len(ran))
    shot(page, "function-page")

    page.fill("#invoke-function textarea[name=data]", '{"who": "Ada", "n": [1, 2]}')
    page.click("#invoke-function button[type=submit]")
    link = page.locator("#invoke-result a#invoked-run")
    expect(link).to_have_count(1)
    shot(page, "function-invoked")
    run_id = link.inner_text()
    link.click()
    expect(page).to_have_url(f"{server.url}/runs/{run_id}")
    expect(page.locator("h1 .status")).to_have_text("Completed")
    expect(page.locator("#run-output")).to_contain_text('"who": "Ada"')
    expect(page.locator("#run-output")).to_contain_text("inngest/function.invoked")
    shot(page, "function-invoked-run")


def test_the_invoke_form_refuses_data_that_is_not_a_json_object(stack: Stack, page: Page) -> None:
    server = stack.server
    before = server.http.get("/v1/runs", params={"function": "fns-echo"}).json()["data"]
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/invoke" in r.url else None)
    page.goto(server.url + "/functions/fns-echo")
    result = page.locator("#invoke-result")
    for text, says in (
        ('{"who": ', "The data is not valid JSON"),
        ("[1, 2]", "The data must be a JSON object."),
        ('"text"', "The data must be a JSON object."),
    ):
        page.fill("#invoke-function textarea[name=data]", text)
        page.click("#invoke-function button[type=submit]")
        expect(result).to_contain_text(says)
        expect(result).to_have_class("error")
    shot(page, "function-invoke-refused")
    assert sent == []
    after = server.http.get("/v1/runs", params={"function": "fns-echo"}).json()["data"]
    assert after == before


def test_a_batched_function_says_the_invoke_is_held(stack: Stack, page: Page) -> None:
    page.goto(stack.server.url + "/functions/fns-batched")
    page.fill("#invoke-function textarea[name=data]", '{"user": "u9"}')
    page.click("#invoke-function button[type=submit]")
    expect(page.locator("#invoke-result")).to_contain_text(
        "no run started now (held by the function's batch)"
    )


def test_an_unknown_function_says_so(stack: Stack, page: Page) -> None:
    response = page.goto(stack.server.url + "/functions/fns-nope")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("No such function")


def test_in_production_the_invoke_sends_the_sessions_csrf_token(tmp_path: Path, page: Page) -> None:
    stack = Stack(
        tmp_path,
        "functions_app",
        app_env={"STEPWISE_TEST_SIGNING_KEY": SIGNING_KEY},
        functions=3,
    )
    stack.server.production(signing_key=SIGNING_KEY, event_key="e2e-event-key")
    with stack:
        base = stack.server.url
        _, key = create_key(stack.server, "e2e")
        page.goto(base + "/functions/fns-echo")
        expect(page).to_have_url(base + "/login?next=%2Ffunctions%2Ffns-echo")
        page.fill("#login input[name=password]", key)
        page.click("#login button[type=submit]")
        expect(page).to_have_url(base + "/functions/fns-echo")
        expect(page.locator("#chart-last_hour canvas")).to_have_count(1)

        page.fill("#invoke-function textarea[name=data]", '{"who": "Grace"}')
        page.click("#invoke-function button[type=submit]")
        page.locator("#invoke-result a#invoked-run").click()
        expect(page.locator("h1 .status")).to_have_text("Completed")
        expect(page.locator("#run-output")).to_contain_text('"who": "Grace"')
        shot(page, "production-function-invoked-run")
