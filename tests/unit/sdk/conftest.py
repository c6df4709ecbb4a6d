from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_inngest_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """SDK behaviour depends on INNGEST_* variables; start every test without them."""
    for name in list(os.environ):
        if name.startswith("INNGEST_"):
            monkeypatch.delenv(name)
