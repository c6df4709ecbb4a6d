"""The pytest plugin (entry point ``pytest11``): a real ``stepwise dev`` for tests.

Fixtures:

* ``stepwise_server``: a ``DevServer`` on a free port and a SQLite file in a temporary
  directory, started once per session (``--stepwise-server-scope`` or the
  ``stepwise_server_scope`` ini option: ``session``, ``package``, ``module`` or
  ``function``). Failed steps are retried after ``stepwise_retry_interval`` seconds
  (default 0.1) instead of the production backoff.
* ``stepwise_app``: a function ``stepwise_app(client, [functions])`` that serves the
  functions from this process to that server until the test ends, and returns the
  ``ServedApp``. ``stepwise_server.trigger`` (or ``trigger_async``) sends an event and
  waits for the run it starts to end.

Both work in plain ``def`` tests and in ``async def`` tests (pytest-asyncio): the app has
its own thread and event loop, and the helpers come in sync and ``_async`` forms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..sdk.client import Stepwise
    from ..sdk.function import Function
    from .app import ServedApp
    from .server import DevServer

_SCOPES = ("session", "package", "module", "function")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stepwise", "Stepwise test server")
    group.addoption(
        "--stepwise-server-scope",
        choices=_SCOPES,
        default=None,
        help="how long one stepwise_server lives (default: the ini option, else session)",
    )
    parser.addini(
        "stepwise_server_scope", "scope of the stepwise_server fixture", default="session"
    )
    parser.addini(
        "stepwise_retry_interval",
        "seconds the test server waits between attempts of a failed step",
        default="0.1",
    )


def _server_scope(fixture_name: str, config: pytest.Config) -> str:
    scope = config.getoption("stepwise_server_scope") or config.getini("stepwise_server_scope")
    if scope not in _SCOPES:
        raise pytest.UsageError(f"stepwise_server_scope must be one of {_SCOPES}, not {scope!r}")
    return str(scope)


@pytest.fixture(scope=_server_scope)  # type: ignore[arg-type]  # pytest takes a callable
def stepwise_server(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[DevServer]:
    """A real ``stepwise dev`` on a temporary SQLite file and a free port."""
    from .server import DevServer

    retry_interval = float(pytestconfig.getini("stepwise_retry_interval"))
    # No polling: apps served by ``stepwise_app`` sync themselves, and are gone after a test.
    server = DevServer(
        tmp_path_factory.mktemp("stepwise"), retry_interval=retry_interval, poll_interval=None
    )
    with server:
        yield server


@pytest.fixture
def stepwise_app(
    stepwise_server: DevServer,
) -> Iterator[Callable[[Stepwise, Sequence[Function]], ServedApp]]:
    """``stepwise_app(client, [functions])``: serve them to ``stepwise_server`` for this test."""
    from .app import ServedApp

    apps: list[ServedApp] = []

    def serve(client: Stepwise, functions: Sequence[Function]) -> ServedApp:
        app = ServedApp(stepwise_server, client, functions)
        app.start()
        apps.append(app)
        return app

    yield serve
    for app in reversed(apps):
        app.stop()
