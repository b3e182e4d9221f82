"""Transient faults end in exact tables; persistent ones fail fast and explain themselves."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from analytics_assets.split_source import SplitAuthError, SplitConfigurationError, SplitSettings
from analytics_assets.split_source.errors import find_split_error
from analytics_assets_tests.split_source.helpers import run_source, warehouse_for
from analytics_assets_tests.support import assert_matches_truth


def test_faults_and_a_tight_rate_limit_still_give_exact_tables(sandbox_factory, tmp_path: Path):
    sandbox = sandbox_factory(
        size="tiny", seed=7, fault_rate=0.25, fault_kinds="all", slow_ms=2500, rate_limit=40
    )
    truth = sandbox.ground_truth()
    sandbox.reset_stats()

    stats = run_source(sandbox.base_url, tmp_path / "w.duckdb", request_timeout=1.0)

    assert_matches_truth(warehouse_for(tmp_path / "w.duckdb"), truth)
    server = sandbox.stats()
    assert sum(server["faults"].values()) > 0  # faults really happened
    assert stats.retries > 0
    # Only the retries the faults forced, and the requests a 429 sent back to wait (flow
    # control, which uses no retry), are added to the minimal requests.
    extra = stats.retries + stats.rate_limited
    assert stats.requests - extra == truth["minimal_requests"]["total"]
    assert server["requests_total"] == stats.requests


def test_rate_limit_429_carries_only_split_headers_and_is_honoured(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(size="tiny", fault_rate=0.05, fault_kinds="429")
    truth = sandbox.ground_truth()
    stats = run_source(sandbox.base_url, tmp_path / "w.duckdb")
    assert stats.rate_limited > 0
    # Each 429 made every request wait at least the reset time (integer seconds, >= 1).
    assert stats.waited_seconds >= stats.rate_limited * 0.9
    assert_matches_truth(warehouse_for(tmp_path / "w.duckdb"), truth)


def test_invalid_key_fails_fast_with_a_clear_message_and_no_key(
    sandbox_factory, tmp_path, capfd, caplog
):
    secret = "sk-test-SECRET-0123456789abcdef"
    sandbox = sandbox_factory(size="tiny", api_key="the-right-key")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PipelineStepFailed) as raised:
        run_source(sandbox.base_url, tmp_path / "w.duckdb", api_key=secret)
    error = find_split_error(raised.value)
    assert isinstance(error, SplitAuthError)
    assert error.status == 401
    assert "GET /v2/" in str(error) and "SPLIT_API_KEY" in str(error)
    # No retries on 401: at most the requests already in flight together (4) were sent.
    assert sandbox.stats()["requests_total"] <= 4
    captured = capfd.readouterr()
    for text in (str(raised.value), str(error), captured.out, captured.err, caplog.text):
        assert secret not in text


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({}, "SPLIT_API_KEY"),
        ({"SPLIT_API_KEY": "k", "SPLIT_API_BASE_URL": "api.split.io/internal"}, "not a valid"),
        ({"SPLIT_API_KEY": "k", "SPLIT_AUTH_SCHEME": "basic"}, "bearer, x-api-key"),
        (
            {"SPLIT_API_KEY": "k", "SPLIT_MAX_REQUESTS_PER_SECOND": "fast"},
            "is not valid; set it to requests per second",
        ),
    ],
)
def test_bad_settings_are_explained(environ, fragment, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .dlt/secrets.toml to fall back on
    monkeypatch.delenv("API_KEY", raising=False)
    with pytest.raises(SplitConfigurationError) as raised:
        SplitSettings.from_environment(environ)
    assert fragment in str(raised.value)


def test_key_from_dlt_secrets_like_the_original_config(tmp_path):
    # dlt reads .dlt/ once per process, relative to the working directory: use a fresh one.
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text('api_key = "from-secrets"\n')
    script = (
        "from analytics_assets.split_source import SplitSettings;"
        "s = SplitSettings.from_environment({});"
        "print(s.api_key == 'from-secrets', 'from-secrets' in repr(s))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPLIT_") and k != "API_KEY"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.stdout.split() == ["True", "False"], result.stderr


def test_harness_account_without_users_and_groups_loads_the_rest(
    sandbox_factory, tmp_path: Path, caplog
):
    sandbox = sandbox_factory(size="tiny")
    path = tmp_path / "w.duckdb"
    run_source(sandbox.base_url, path, auth_scheme="x-api-key")
    truth = sandbox.ground_truth()
    assert_matches_truth(warehouse_for(path), truth)

    sandbox.control(harness_mode=True, generation=1)
    caplog.set_level(logging.WARNING, logger="analytics_assets.split_source")
    stats = run_source(sandbox.base_url, path, auth_scheme="x-api-key")

    assert "skipping table `users`" in caplog.text and "skipping table `groups`" in caplog.text
    # one refused request per user status and one for groups: no retries
    assert stats.by_endpoint["users"] == 3 and stats.by_endpoint["groups"] == 1
    later = sandbox.ground_truth()
    others = [t for t in later["tables"] if t not in ("users", "groups")]
    assert_matches_truth(warehouse_for(path), later, tables=others)
    # The refused tables keep what the warehouse had; they are not emptied.
    assert_matches_truth(warehouse_for(path), truth, tables=["users", "groups"])
