"""Fixtures of the interop tests that hold our server to the reference server's exact results."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from support.exchanges import JS_APP, PY_APP, exact_stack
from support.harness import REPO, Stack


@pytest.fixture(scope="module")
def exact_py(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The PyPI SDK's recording app (FastAPI) on one server, shared by a module's tests."""
    with exact_stack(tmp_path_factory.mktemp("exact-py"), PY_APP) as stack:
        yield stack


@pytest.fixture(scope="module")
def exact_js(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The npm SDK 4.x's recording app on one server, shared by a module's tests."""
    js_dir = REPO / "tests" / "interop" / "js"
    if not (js_dir / "node_modules" / "inngest").is_dir():
        pytest.fail(f"the JS SDK is not installed: run `npm ci --prefix {js_dir}`")
    assert shutil.which("node"), "Node.js is required for the JS interop tests"
    with exact_stack(tmp_path_factory.mktemp("exact-js"), JS_APP) as stack:
        yield stack
