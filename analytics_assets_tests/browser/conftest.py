"""Fixtures for the browser tests: a sandbox, ``dagster dev`` on it, and headless Chromium.

Everything a fixture starts, it stops by PID (the sandbox) or by process group (``dagster dev``
with its code server, webserver, daemon and any run workers), in its teardown.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets_tests.browser.chromium import launch, unavailable_reason
from analytics_assets_tests.browser.processes import (
    PROJECT_ROOT,
    DagsterDev,
    group_alive,
    group_members,
)

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """Remember each phase's report on the item, for screenshots on failure."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def browser_available() -> None:
    """Skip (with the reason) where Chromium or playwright is missing."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def artifacts(browser_available: None) -> Path:
    """test-artifacts/browser/, emptied once per session (gitignored); only when the browser
    tests run, so a skipping session leaves the last run's screenshots alone."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def ui_sandbox(
    browser_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxProcess]:
    """A tiny sandbox of the Split Admin API on a free port."""
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    sandbox = SandboxProcess(size="tiny", port=0, log_path=log)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def dagster_dev(
    ui_sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[DagsterDev]:
    """``dagster dev`` from the project root on an isolated instance and DuckDB file."""
    dev = DagsterDev(tmp_path_factory.mktemp("dagster-ui"), ui_sandbox.base_url)
    dev.start()
    try:
        dev.wait_until_serving()
        dev.wait_until_location_loaded()
        yield dev
    finally:
        stopping = time.monotonic()
        dev.stop()
        print(f"dagster dev stopped in {time.monotonic() - stopping:.1f}s", flush=True)
        if dev.log_path.exists():
            shutil.copyfile(dev.log_path, artifacts / "dagster-dev.log")
    if dev.escalations:  # e.g. a run worker still busy when a failed test ends
        print(f"dagster dev's process group needed: {dev.escalations}", flush=True)
    assert not group_alive(dev.pgid), f"left running: {group_members(dev.pgid)}"


@pytest.fixture(scope="module")
def browser(browser_available: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def open_pages(request: pytest.FixtureRequest, artifacts: Path) -> Iterator[dict[str, Any]]:
    """Pages a test registers by name; screenshots of each when the test fails."""
    pages: dict[str, Any] = {}
    yield pages
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for name, page in pages.items():
            try:
                page.screenshot(path=str(artifacts / f"FAILED-{name}.png"), full_page=True)
            except Exception as exc:  # the page may be gone with the browser
                (artifacts / f"FAILED-{name}.txt").write_text(f"no screenshot: {exc}")
    for page in pages.values():
        with contextlib.suppress(Exception):
            page.context.close()


@pytest.fixture
def diagnostics(
    request: pytest.FixtureRequest, dagster_dev: DagsterDev, artifacts: Path
) -> Iterator[None]:
    """On failure: every run's status and the DuckDB pool's slots, as the instance has them."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed:
        return
    query = """{
      runsOrError { ... on Runs { results { runId status jobName tags { key value } } } }
      instance { concurrencyLimit(concurrencyKey: "split_duckdb_writer") {
        slotCount claimedSlots { runId stepKey } pendingSteps { runId stepKey } } }
    }"""
    try:
        state: Any = dagster_dev.graphql(query)
    except Exception as exc:
        state = {"error": str(exc)}
    (artifacts / "FAILED-instance-state.json").write_text(json.dumps(state, indent=2))
