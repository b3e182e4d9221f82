"""Shared fixtures: sandboxes over real HTTP, and an isolated project directory per test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

from analytics_assets.sandbox.process import SandboxProcess  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sandbox() -> Iterator[SandboxProcess]:
    """A read-only tiny sandbox shared by tests that do not change its state."""
    with SandboxProcess(size="tiny") as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def demo_sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(size="demo") as sandbox:
        yield sandbox


@pytest.fixture
def sandbox_factory() -> Iterator:
    """Start sandboxes with custom options; all are stopped (by PID) after the test."""
    started: list[SandboxProcess] = []

    def start(**options: object) -> SandboxProcess:
        sandbox = SandboxProcess(**options)  # type: ignore[arg-type]
        sandbox.start()
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated working directory: its own DuckDB file and Dagster instance."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("ANALYTICS_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.delenv("ANALYTICS_DESTINATION", raising=False)
    monkeypatch.delenv("ANALYTICS_DATASET", raising=False)
    for name in list(os.environ):
        if name.startswith("SPLIT_"):
            monkeypatch.delenv(name)
    # Fast retries in tests; the production default keeps the original config's factor 2.
    monkeypatch.setenv("SPLIT_BACKOFF_FACTOR", "0.05")
    return tmp_path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """How ``make test`` (``-n 2 --dist loadscope``) shares the tests between its pytest-xdist
    workers: a file at a time, except the reliability suite, which stays in one worker whole.
    Its secret scan runs last and reads what every other reliability run left, which another
    worker's runs would not have told it. (``xdist_group`` marks would say the same, but
    pytest-xdist 3.8 cannot apply them under pytest 9.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByFileReliabilityWhole(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return RELIABILITY_SUITE if path.startswith(RELIABILITY_SUITE) else path

    return ByFileReliabilityWhole(config, log)


RELIABILITY_SUITE = "analytics_assets_tests/reliability/"


# The reliability suite's figures: measured in a test process, printed by the one that reports.
FIGURES_OUTPUT = "reliability_figures"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist the figures are measured in a worker: send them to the controller,
    which prints them (``pytest_testnodedown``)."""
    from analytics_assets_tests.reliability.harness import FIGURES

    output = getattr(session.config, "workeroutput", None)
    if output is not None and FIGURES.items:
        output[FIGURES_OUTPUT] = json.loads(json.dumps(FIGURES.as_json(), default=str))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    from analytics_assets_tests.reliability.harness import FIGURES, Figure

    for item in getattr(node, "workeroutput", {}).get(FIGURES_OUTPUT, []):
        FIGURES.items.append(Figure(**item))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from analytics_assets_tests.reliability.harness import FIGURES

    if not FIGURES.items:
        return
    data = FIGURES.as_json()
    target = os.environ.get("RELIABILITY_FIGURES") or str(
        Path(str(config._tmp_path_factory.getbasetemp())) / "reliability-figures.json"
    )
    Path(target).write_text(json.dumps(data, indent=2, default=str))
    terminalreporter.section("reliability figures")
    for figure in FIGURES.items:
        numbers = ", ".join(f"{k}={v}" for k, v in figure.numbers.items())
        terminalreporter.write_line(
            f"[{figure.group}] {figure.case} via {figure.entry}: {figure.outcome}; {numbers}"
        )
    terminalreporter.write_line(f"(written to {target})")
