"""Debian's Chromium, driven by the Python ``playwright`` package.

Playwright's own browser download needs the internet; the tests use the distribution's
browser (``apt-get install chromium``, see ``.ci/install-chromium.sh``) through
``executable_path`` instead. Without it (or without ``playwright``) the browser tests skip.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

CHROMIUM_PATH = Path(os.environ.get("ANALYTICS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable_reason(chromium: Path | None = None) -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    chromium = chromium or CHROMIUM_PATH
    if not (chromium.is_file() and os.access(chromium, os.X_OK)):
        return (
            f"browser test skipped: no Chromium at {chromium}. Install Debian's package"
            " (sudo .ci/install-chromium.sh, or apt-get install chromium) to run it."
        )
    if importlib.util.find_spec("playwright") is None:
        return (
            "browser test skipped: the Python package playwright is not installed"
            " (pip install -c constraints.txt -e '.[browser]')."
        )
    return None


def launch(playwright: Any, chromium: Path | None = None) -> Any:
    """A headless Chromium browser (a playwright ``Browser``)."""
    return playwright.chromium.launch(
        executable_path=str(chromium or CHROMIUM_PATH), args=CHROMIUM_ARGS, headless=True
    )
