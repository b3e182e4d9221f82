"""The browser tests' own machinery, without a browser (these run everywhere).

They make sure the browser test skips for the right reason on a machine without Chromium,
that the CI script providing Chromium is sound, and that stopping a process group leaves
nothing behind, even when SIGINT was inherited as ignored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from analytics_assets_tests.browser import chromium
from analytics_assets_tests.browser.processes import (
    PROJECT_ROOT,
    free_port,
    group_alive,
    start_in_own_group,
    stop_process_group,
)

INSTALL_SCRIPT = PROJECT_ROOT / ".ci" / "install-chromium.sh"


def test_no_chromium_is_a_reason_to_skip(tmp_path: Path) -> None:
    reason = chromium.unavailable_reason(tmp_path / "no-chromium")
    assert reason is not None
    assert "no Chromium at" in reason and "install-chromium.sh" in reason


def test_no_playwright_is_a_reason_to_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    found = chromium.importlib.util.find_spec
    monkeypatch.setattr(
        chromium.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "playwright" else found(name, *a),
    )
    reason = chromium.unavailable_reason(Path(sys.executable))
    assert reason is not None and "playwright is not installed" in reason


def test_browser_test_skips_without_chromium(tmp_path: Path) -> None:
    """The plain test command passes on a machine without Chromium: the test skips."""
    env = dict(os.environ, ANALYTICS_TEST_CHROMIUM=str(tmp_path / "no-chromium"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "browser",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(PROJECT_ROOT / "analytics_assets_tests" / "browser" / "test_dagster_ui.py"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout, result.stdout
    assert "no Chromium at" in result.stdout, result.stdout


def test_install_script_is_sound_and_idempotent() -> None:
    assert os.access(INSTALL_SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(INSTALL_SCRIPT)], check=True)
    if not chromium.CHROMIUM_PATH.exists():
        pytest.skip("Chromium is not installed here; the script would install it")
    result = subprocess.run(
        [str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert "already installed" in result.stdout


def test_free_port_is_free() -> None:
    import socket

    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))


def _start(script: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "out.log", "wb")  # noqa: SIM115 - closed with the test's tmp dir
    return start_in_own_group(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path, env=os.environ, log=log
    )


def test_stopping_a_group_stops_children_that_ignore_sigint(tmp_path: Path) -> None:
    """A leader that dies on SIGINT leaves children behind; they are terminated too."""
    process = _start(
        """
        import signal, subprocess, time
        for _ in range(2):
            subprocess.Popen(["sleep", "300"], preexec_fn=lambda: signal.signal(
                signal.SIGINT, signal.SIG_IGN))
        time.sleep(300)
        """,
        tmp_path,
    )
    _wait_for_children(process.pid, 3)
    escalations = stop_process_group(process, graceful_seconds=5, term_seconds=5)
    assert not group_alive(process.pid)
    assert escalations and escalations[0].startswith("SIGTERM")


def test_a_clean_leader_stops_on_sigint_alone(tmp_path: Path) -> None:
    """Like dagster dev: the leader stops its children on SIGINT; no escalation needed."""
    process = _start(
        """
        import signal, subprocess, sys, time
        children = [subprocess.Popen(["sleep", "300"]) for _ in range(2)]
        def stop(*_):
            for child in children:
                child.terminate()
                child.wait()
            sys.exit(0)
        signal.signal(signal.SIGINT, stop)
        time.sleep(300)
        """,
        tmp_path,
    )
    _wait_for_children(process.pid, 3)
    assert stop_process_group(process, graceful_seconds=10) == []
    assert not group_alive(process.pid)


def test_inherited_ignored_sigint_is_reset(tmp_path: Path) -> None:
    """Started from a context that ignores SIGINT, the child still gets the default."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process = _start(
            "import signal; print(signal.getsignal(signal.SIGINT), flush=True)", tmp_path
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    process.wait(timeout=30)
    assert "default_int_handler" in (tmp_path / "out.log").read_text()


def _wait_for_children(pgid: int, count: int, timeout: float = 20.0) -> None:
    import time

    from analytics_assets_tests.browser.processes import group_members

    deadline = time.monotonic() + timeout
    while len(group_members(pgid)) < count:
        assert time.monotonic() < deadline, group_members(pgid)
        time.sleep(0.1)
