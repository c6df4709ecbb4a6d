"""Every example of docs/adapters.md runs a function on a real dev server.

An example marked ``<!-- example: NAME -->`` runs as written, as a script, with only its
port changed; the two Django ``urls.py`` examples are served by Django (under WSGI and
ASGI), and the Lambda handler behind each of the three event shapes of the local shim,
both through ``apps/adapter_app.py``. Each app is added to the server by its URL, synced,
and must answer ``demo/hello`` with ``"hello Ada"``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import REPO, AppProcess, ServerProcess

# The examples check the SDK's side; the store plays no part, so SQLite only.
pytestmark = pytest.mark.backends("sqlite")

DOC = REPO / "docs" / "adapters.md"
MARKED = re.compile(r"<!-- example: ([\w-]+) -->\n```python\n(.*?)```", re.DOTALL)
EXAMPLES = dict(MARKED.findall(DOC.read_text()))
# Examples that are modules rather than scripts, and the adapter_app.py modes serving them.
SERVED = {
    "django-wsgi": ["django-wsgi"],
    "django-asgi": ["django-asgi"],
    "lambda": ["lambda-apigw-v1", "lambda-apigw-v2", "lambda-function-url"],
}
CASES = [(name, mode) for name in EXAMPLES for mode in SERVED.get(name, ["script"])]


def test_every_adapter_has_an_example() -> None:
    text = DOC.read_text()
    adapters = {p.stem for p in (REPO / "src" / "stepwise" / "adapters").glob("[!_]*.py")}
    for adapter in adapters:
        assert re.search(rf"stepwise\.adapters(\.| import ){adapter}\b", text), adapter
    assert len(EXAMPLES) == len(adapters) + 1  # Django twice: a def view and an async one
    assert text.count("<!-- example:") == len(EXAMPLES)


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("docs"), sdk_urls=[], extra_args=["--no-poll"])
    s.start_and_wait()
    yield s
    s.close()


@pytest.mark.parametrize(("example", "mode"), CASES)
def test_the_example_serves_its_function(
    server: ServerProcess, tmp_path: Path, example: str, mode: str
) -> None:
    code = EXAMPLES[example]
    source = tmp_path / f"{example.replace('-', '_')}_example.py"
    app = AppProcess(
        tmp_path,
        "adapter_app",
        server_url=server.url,
        extra_env={
            "INNGEST_DEV": server.url,
            "STEPWISE_TEST_ADAPTER": mode,
            "STEPWISE_TEST_EXAMPLE": str(source),
            "PYTHONPATH": str(REPO / "tests"),  # the Lambda shim
        },
    )
    if mode == "script":
        assert code.count("8000") == 1, "a script example names its port once"
        code = code.replace("8000", str(app.port))
        app.args = [sys.executable, str(source)]
    source.write_text(code)
    try:
        app.start_and_wait()
        # Every example is the app "my-app": each sync moves it to the new example's URL.
        added = server.http.post("/v1/apps", json={"url": app.url})
        assert added.status_code == 201, added.text
        synced = server.http.get("/v1/apps/my-app").json()["data"]
        framework = {"django-wsgi": "django", "django-asgi": "django", "lambda": "aws-lambda"}
        assert (synced["url"], synced["framework"]) == (app.url, framework.get(example, example))
        run = server.wait_for_run(server.send("demo/hello", {"name": "Ada"}))
        assert run["status"] == "Completed", app.log()
        assert run["output"] == "hello Ada"
    finally:
        app.stop()
