"""Fixtures of the reliability suite: one distinctive API key for every run, a ledger of
everything the runs wrote (scanned for that key at the end), and the measured figures."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets_tests.reliability.harness import FIGURES, Figures, Project

SECRET = "sk-RELIABILITY-" + secrets.token_hex(16)
"""The API key of every run in this suite; it must appear in no output at all."""


class Ledger:
    """Every output and folder the suite's runs produced, for the secret scan."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.paths: list[Path] = []
        self.texts: list[tuple[str, str]] = []

    def add_path(self, path: Path) -> None:
        self.paths.append(Path(path))

    def add_text(self, label: str, text: str) -> None:
        if text:
            self.texts.append((label, text))


LEDGER = Ledger(SECRET)


@pytest.fixture(scope="session")
def secret() -> str:
    return SECRET


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    return LEDGER


@pytest.fixture(scope="session")
def figures() -> Figures:
    return FIGURES


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # A record that cannot be formatted is not output either.
        with contextlib.suppress(Exception):
            self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def _outputs_to_ledger(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """This process's stdout, stderr and log records during the test go to the ledger too."""
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.setLevel(previous_level)
        root.removeHandler(handler)
        out, err = capfd.readouterr()
        LEDGER.add_text("test process stdout/stderr", out + err)
        LEDGER.add_text("test process log records", "\n".join(handler.lines))
        sys.stdout.write(out)  # still shown if the test fails
        sys.stderr.write(err)


def _roomy_tmpfs(path: str) -> bool:
    """Writable, with room for the suite's ~300 MB (containers often give /dev/shm 64 MB)."""
    try:
        return os.access(path, os.W_OK) and shutil.disk_usage(path).free > 2 * 1024**3
    except OSError:
        return False


@pytest.fixture(scope="session")
def work_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the projects live: a tmpfs when there is one.

    Dagster's SQLite storage commits (and fsyncs) every event; on a busy shared disk that
    alone can triple a sync's time. A SIGKILL loses nothing on either (the page cache
    survives the process), so the results are the same. Without a roomy tmpfs, pytest's
    temporary folder is used. ``RELIABILITY_TMP`` overrides it;
    ``RELIABILITY_KEEP=1`` keeps the folder after the session.
    """
    base = os.environ.get("RELIABILITY_TMP") or ("/dev/shm" if _roomy_tmpfs("/dev/shm") else None)
    if base:
        root = Path(tempfile.mkdtemp(prefix="analytics-assets-reliability-", dir=base))
    else:
        root = tmp_path_factory.mktemp("reliability")
    yield root
    if not os.environ.get("RELIABILITY_KEEP"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def project_root(work_root: Path, request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:80]
    root = work_root / name
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def make_project(project_root: Path) -> Iterator:
    """``make_project(name, **sandbox_options)``: a project and its own sandbox (or none
    with ``sandbox=False``); sandboxes are stopped (by PID) after the test."""
    sandboxes: list[SandboxProcess] = []

    def make(name: str = "project", sandbox: bool = True, **options: object) -> Project:
        root = project_root / name
        root.mkdir(parents=True, exist_ok=True)
        server = None
        if sandbox:
            options.setdefault("size", "tiny")
            server = SandboxProcess(log_path=root / "sandbox.log", **options)  # type: ignore[arg-type]
            server.start()
            sandboxes.append(server)
        return Project(root, server, SECRET, LEDGER)

    yield make
    for server in sandboxes:
        server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The secret scan reads what every other test left: it runs last."""
    last = [i for i in items if i.nodeid.endswith("test_no_secret_anywhere")]
    for item in last:
        items.remove(item)
        items.append(item)
