"""The pytest plugin, as a user meets it: a test session (run by pytester in a subprocess)
whose tests use ``stepwise_server`` and ``stepwise_app`` on a real ``stepwise dev``.

SQLite only: the plugin's server is ``stepwise dev`` on a temporary SQLite file by design.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.backends("sqlite")

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
timeout = 120
"""

FUNCTIONS = """
import stepwise

client = stepwise.Stepwise("plugin-app")


@client.create_function(fn_id="greet", trigger=stepwise.TriggerEvent(event="plugin/greet"))
async def greet(ctx: stepwise.Context) -> str:
    name = await ctx.step.run("load-name", lambda: ctx.event.data["name"])
    await ctx.step.sleep("pause", "1s")
    return f"hello {name}"


@client.create_function(
    fn_id="flaky", trigger=stepwise.TriggerEvent(event="plugin/flaky"), retries=2
)
def flaky(ctx: stepwise.SyncContext) -> int:
    def attempt() -> int:
        if ctx.attempt < 2:
            raise RuntimeError("not yet")
        return ctx.attempt

    return ctx.step.run("attempt", attempt)


@client.create_function(fn_id="relay", trigger=stepwise.TriggerEvent(event="plugin/relay"))
async def relay(ctx: stepwise.Context) -> list[str]:
    # The client itself points at the test server while the app is served.
    return await ctx.step.run("send", lambda: client.send({"name": "plugin/relayed", "data": {}}))
"""


def _write(pytester: pytest.Pytester, tests: str) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(functions=FUNCTIONS, test_user=tests)


def test_sync_and_async_tests_run_functions_on_a_real_server(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
from functions import client, flaky, greet, relay

BEFORE = client.config


URLS = set()


def test_sync(stepwise_app, stepwise_server):
    URLS.add(stepwise_server.url)
    stepwise_app(client, [greet, flaky])
    run = stepwise_server.trigger("plugin/greet", {"name": "ada"})
    assert run["status"] == "Completed"
    assert run["output"] == "hello ada"
    retried = stepwise_server.trigger("plugin/flaky", timeout=60)
    assert (retried["status"], retried["output"]) == ("Completed", 2)


async def test_async(stepwise_app, stepwise_server):
    URLS.add(stepwise_server.url)
    stepwise_app(client, [greet, relay])
    assert client.config.api_base_url == stepwise_server.url
    run = await stepwise_server.trigger_async({"name": "plugin/greet", "data": {"name": "bob"}})
    assert run["output"] == "hello bob"
    event_id = await stepwise_server.send_async("plugin/relay")
    relayed = await stepwise_server.wait_for_run_async(event_id)
    assert relayed["status"] == "Completed"
    assert [e["id"] for e in stepwise_server.events("plugin/relayed")] == relayed["output"]
    history = stepwise_server.history(run["run_id"])
    assert [h["name"] for h in history if h["kind"] == "StepCompleted"] == ["load-name"]


def test_the_client_got_its_settings_back():
    # While served, the client pointed at the test server; after the test, no more.
    assert client.config == BEFORE
    assert len(URLS) == 1  # one server for the session, by default
""",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


SCOPE_TESTS = """
urls = []


def test_first(stepwise_server):
    urls.append(stepwise_server.url)
    assert stepwise_server.http.get("/health").status_code == 200


def test_second(stepwise_server):
    urls.append(stepwise_server.url)
    print("SERVERS", len(set(urls)))
"""


def test_the_server_lives_for_the_scope_asked(pytester: pytest.Pytester) -> None:
    _write(pytester, SCOPE_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-s", "--stepwise-server-scope", "function"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*SERVERS 2*"])


def test_the_scope_can_be_set_in_the_ini_file(pytester: pytest.Pytester) -> None:
    _write(pytester, SCOPE_TESTS)
    pytester.makeini(INI + "stepwise_server_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*SERVERS 2*"])
