"""The command line end to end, in a temporary directory, as a user runs it."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from analytics_assets.warehouse import WarehouseSettings
from analytics_assets_tests.support import assert_matches_truth, cli_environment, run_cli

pytestmark = pytest.mark.slow


def test_sync_end_to_end_then_selections_and_freshness(sandbox_factory, tmp_path: Path):
    sandbox = sandbox_factory(size="tiny")
    env = cli_environment(SPLIT_API_KEY="cli-test-key", SPLIT_API_BASE_URL=sandbox.base_url)

    never_synced = run_cli(["check-freshness"], tmp_path, env)
    assert never_synced.returncode == 1, never_synced.stderr

    result = run_cli(["sync"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "segments_keys" in result.stdout and "API requests" in result.stdout
    truth = sandbox.ground_truth()
    assert f"{truth['minimal_requests']['total']} API requests" in result.stdout
    assert (tmp_path / ".dagster_home" / "dagster.yaml").exists()  # project-local instance
    # dbt's own output (hundreds of lines) goes to a file the sync names, not to stdout.
    build_log = tmp_path / ".dagster_home" / "dbt" / "sync-build.log"
    assert f"dbt's output: {build_log}" in result.stderr, result.stderr
    assert "Completed successfully" in build_log.read_text()
    assert "Completed successfully" not in result.stdout + result.stderr
    assert len(result.stdout.splitlines()) < 40, result.stdout  # the summary table, and hints
    warehouse = WarehouseSettings(duckdb_path=str(tmp_path / "data" / "analytics.duckdb"))
    assert_matches_truth(warehouse, truth)

    counted = run_cli(["query", "SELECT count(*) AS n FROM segments_keys"], tmp_path, env)
    assert (
        counted.returncode == 0 and str(truth["tables"]["segments_keys"]["count"]) in counted.stdout
    )
    typo = run_cli(["query", "SELEC nothing"], tmp_path, env)
    assert typo.returncode == 1 and "query failed" in typo.stderr and "Traceback" not in typo.stderr

    fresh = run_cli(["check-freshness"], tmp_path, env)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr

    workspace = truth["tables"]["workspaces"]["rows"][0]
    sandbox.reset_stats()
    one = run_cli(
        ["sync", "--workspace", workspace["name"], "--select", "feature_flags"], tmp_path, env
    )
    assert one.returncode == 0, one.stderr
    requests = sandbox.stats()["by_endpoint"]
    assert set(requests) == {"workspaces", "environments", "feature_flags"}
    assert requests["feature_flags"]["requests"] <= 2  # one workspace's flags only

    unknown = run_cli(["sync", "--workspace", "no such workspace"], tmp_path, env)
    assert unknown.returncode == 2
    assert "does not exist" in unknown.stderr and workspace["name"] in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_one_table_on_a_new_warehouse_builds_only_the_models_it_feeds(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(size="tiny")
    env = cli_environment(SPLIT_API_KEY="cli-test-key", SPLIT_API_BASE_URL=sandbox.base_url)
    truth = sandbox.ground_truth(rows=False)

    one = run_cli(["sync", "--select", "feature_flags"], tmp_path, env)
    assert one.returncode == 0, one.stdout + one.stderr
    said = " ".join(one.stderr.split())  # progress lines wrap at the terminal's width
    counts = re.search(r"Skipping (\d+) of (\d+) models", said)
    assert counts and 0 < int(counts[1]) < int(counts[2]), said
    skipped = said.split("not loaded yet (", 1)[1].split(")", 1)[0].split(", ")
    assert "feature_flag_definitions" in skipped and "feature_flags" not in skipped
    flags = run_cli(
        ["query", "SELECT count(*) AS n FROM split_analytics.stg_split__flags"], tmp_path, env
    )
    assert flags.returncode == 0, flags.stderr
    assert str(truth["tables"]["feature_flags"]["count"]) in flags.stdout
    unbuilt = run_cli(["query", "SELECT count(*) FROM split_analytics.flag_health"], tmp_path, env)
    assert unbuilt.returncode == 1 and "Traceback" not in unbuilt.stderr

    everything = run_cli(["sync"], tmp_path, env)
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert "Skipping" not in everything.stderr
    health = run_cli(
        ["query", "SELECT count(*) AS n FROM split_analytics.flag_health"], tmp_path, env
    )
    assert health.returncode == 0, health.stderr


def test_a_harness_account_without_users_and_groups_gets_every_model(sandbox_factory, tmp_path):
    """Harness-migrated accounts are refused users and groups (403): the tables exist, empty,
    from the first sync, and every model builds on them."""
    sandbox = sandbox_factory(size="tiny", harness_mode=True)
    env = cli_environment(
        SPLIT_API_KEY="cli-test-key",
        SPLIT_API_BASE_URL=sandbox.base_url,
        SPLIT_AUTH_SCHEME="x-api-key",
    )
    result = run_cli(["sync"], tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipping table `users`" in result.stderr and "Skipping" not in result.stderr
    empty = run_cli(
        ["query", "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM groups) AS n"],
        tmp_path,
        env,
    )
    assert empty.returncode == 0 and empty.stdout.split() == ["n", "-", "0"], empty.stdout
    health = run_cli(
        ["query", "SELECT count(*) AS n FROM split_analytics.flag_health"], tmp_path, env
    )
    assert health.returncode == 0, health.stderr


def test_failed_sync_exits_non_zero_with_the_endpoint_and_no_key(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(size="tiny", api_key="the-valid-key")
    secret = "revoked-key-0123456789"
    env = cli_environment(SPLIT_API_KEY=secret, SPLIT_API_BASE_URL=sandbox.base_url)
    result = run_cli(["sync"], tmp_path, env)
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr and "SPLIT_API_KEY" in result.stderr
    assert secret not in result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_runs_on_embedded_defaults(tmp_path: Path):
    result = run_cli(
        ["demo", "--size", "tiny", "--port", str(_free_port())], tmp_path, cli_environment()
    )
    assert result.returncode == 0, result.stderr
    assert "analytics-assets dev" in result.stdout
    assert (tmp_path / "data" / "analytics.duckdb").exists()
