"""The command line: banner, options, clean stop on signals, no secrets in logs."""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys

import requests

from analytics_assets.sandbox import SandboxProcess
from analytics_assets.sandbox.cli import add_sandbox_arguments, config_from_args

BANNER = re.compile(
    r"^Sandbox Split Admin API serving at http://127\.0\.0\.1:(\d+)/internal/api "
    r"\(size=tiny, seed=3, generation=1\)$"
)


def test_module_entry_point_prints_one_banner_and_stops_on_sigint() -> None:
    command = [sys.executable, "-m", "analytics_assets.sandbox", "--port", "0", "--size", "tiny"]
    command += ["--seed", "3", "--generation", "1", "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().rstrip("\n")
        match = BANNER.match(banner)
        assert match, banner
        root = f"http://127.0.0.1:{match.group(1)}"
        health = requests.get(root + "/_sandbox/health", timeout=10).json()
        assert health == {"status": "ok", "size": "tiny", "seed": 3, "generation": 1}
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert stdout == ""  # exactly one line was printed


def test_sigterm_stops_cleanly() -> None:
    sandbox = SandboxProcess(size="tiny").start()
    assert sandbox.running
    assert sandbox.stop() == 0


def test_argument_defaults_and_parsing() -> None:
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    defaults = parser.parse_args([])
    assert (defaults.host, defaults.port, defaults.seed, defaults.generation) == (
        "127.0.0.1",
        8765,
        42,
        0,
    )
    config = config_from_args(
        parser.parse_args(["--fault-kinds", "500,drop", "--rate-limit", "3", "--retry-after"])
    )
    assert config.fault_kinds == ("500", "drop") and config.rate_limit == 3 and config.retry_after


def test_bad_option_value_exits_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "analytics_assets.sandbox", "--port", "0", "--fault-kinds", "boom"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "boom" in result.stderr and result.stdout == ""


def test_api_keys_never_reach_the_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = "never-log-me-0123"
    log = tmp_path / "sandbox.log"
    with SandboxProcess(size="tiny", api_key=secret, log_level="debug", log_path=log) as sandbox:
        for headers in ({"x-api-key": secret}, {"Authorization": f"Bearer {secret}"}, {}):
            requests.get(sandbox.base_url + "/v2/groups", headers=headers, timeout=10)
        sandbox.control(api_key=secret + "-new")
    text = log.read_text()
    assert "GET /internal/api/v2/groups" in text  # the access log is there...
    assert secret not in text  # ...but no key
