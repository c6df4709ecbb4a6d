"""The machine's Chromium for the dashboard's e2e tests, and their screenshots."""

from __future__ import annotations

import shutil
from pathlib import Path

from playwright.sync_api import Page

ARTIFACTS = Path(__file__).parent.parent / "e2e" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium reaches for Google's services at start, which this machine's
# closed network refuses (see .ci/run, which installs Debian's chromium package).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
