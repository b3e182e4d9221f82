"""A scope that fails persistently costs only itself; the next sync fetches only what is left.

Over real HTTP: the sandbox behind a proxy that answers Split's 404 to every request naming
one environment (or one workspace's environments), however often it is retried.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, DynamicPartitionsDefinition

from analytics_assets.dagster_layer.partitions import environment_partitions
from analytics_assets.dagster_layer.sync import SyncFailed, run_sync
from analytics_assets.dagster_layer.translator import ENVIRONMENT_TABLES  # noqa: E402
from analytics_assets.definitions import build_definitions
from analytics_assets.sandbox.process import SandboxProcess
from analytics_assets.warehouse import WarehouseSettings
from analytics_assets_tests.dagster_layer.conftest import project_environment
from analytics_assets_tests.scope_fault_proxy import ScopeFaultProxy
from analytics_assets_tests.support import assert_matches_truth


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:
    """A fresh instance and warehouse pointed at a proxy in front of a tiny sandbox."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("SPLIT_", "ANALYTICS_")):
            monkeypatch.delenv(name)
    with SandboxProcess(size="tiny") as sandbox, ScopeFaultProxy(sandbox.base_url) as proxy:
        for name, value in project_environment(tmp_path, sandbox).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("SPLIT_API_BASE_URL", proxy.base_url)
        yield sandbox, proxy


def _pages(count: int, page_size: int) -> int:
    return max(1, math.ceil(count / page_size))


def _environment_requests(truth: dict[str, Any], environment: str) -> int:
    """The minimal requests of one environment's scope (as the sandbox's truth counts them)."""
    sizes = truth["minimal_requests"]["page_sizes"]
    tables = truth["tables"]
    definitions = [
        r for r in tables["feature_flag_definitions"]["rows"] if r["environment_id"] == environment
    ]
    active = [
        r for r in tables["environment_segments"]["rows"] if r["environment_id"] == environment
    ]
    keys = [r for r in tables["segments_keys"]["rows"] if r["environment_id"] == environment]
    return (
        _pages(len(definitions), sizes["feature_flag_definitions"])
        + _pages(len(active), sizes["environment_segments"])
        + sum(
            _pages(sum(1 for k in keys if k["segment_name"] == s["name"]), sizes["segments_keys"])
            for s in active
        )
        # the sandbox's default forms: one bare array each (contract §3.5, §3.6)
        + 1  # rule_based_segment_definitions
        + 1  # environment_large_segments
    )


def _without_environment(truth: dict[str, Any], environment: str) -> dict[str, Any]:
    expected = copy.deepcopy(truth)
    for table in ENVIRONMENT_TABLES:
        rows = expected["tables"][table]["rows"]
        expected["tables"][table]["rows"] = [r for r in rows if r["environment_id"] != environment]
    return expected


def _status(instance: DagsterInstance, table: str, partitions: DynamicPartitionsDefinition) -> dict:
    keys = instance.get_dynamic_partitions(partitions.name)
    status = instance.get_status_by_partition(AssetKey(["split", table]), keys, partitions)
    return {k: (v.value if v else None) for k, v in (status or {}).items()}


def test_a_failing_environment_costs_only_itself_and_the_next_sync_fetches_only_it(project):
    sandbox, proxy = project
    truth = sandbox.ground_truth()
    environments = truth["tables"]["environments"]["rows"]
    workspaces = {w["id"]: w["name"] for w in truth["tables"]["workspaces"]["rows"]}
    # An environment in the middle of the range, with flag definitions.
    with_definitions = {
        r["environment_id"] for r in truth["tables"]["feature_flag_definitions"]["rows"]
    }
    broken = [e for e in environments if e["id"] in with_definitions][len(environments) // 3]
    key = f"{workspaces[broken['workspace_id']]}/{broken['name']} ({broken['id']})"
    label = f"environment {key}"
    proxy.failing = broken["id"]

    with pytest.raises(SyncFailed) as failed:
        run_sync(build_definitions(), progress=lambda _: None)
    report = failed.value.report
    assert [s.label for s in report.failed_scopes] == [label]
    assert label in str(failed.value) and "HTTP 404" in str(failed.value)
    assert proxy.failed_requests > 0
    # Every other scope was loaded and committed: the tables are the truth without that one.
    assert_matches_truth(
        WarehouseSettings.from_environment(), _without_environment(truth, broken["id"])
    )
    # Dagster shows exactly that partition failed, every other one materialized.
    instance = DagsterInstance.get()
    for table in ENVIRONMENT_TABLES:
        status = _status(instance, table, environment_partitions)
        assert status.pop(key) == "FAILED", table
        assert set(status.values()) == {"MATERIALIZED"}, table

    # The fault is gone: the next sync resumes, fetching the listings and that scope only.
    proxy.failing = None
    sandbox.reset_stats()
    messages: list[str] = []
    resumed = run_sync(build_definitions(), progress=messages.append)
    by_endpoint = truth["minimal_requests"]["by_endpoint"]
    expected = by_endpoint["workspaces"] + by_endpoint["environments"]
    expected += _environment_requests(truth, broken["id"])
    assert sandbox.stats()["requests_total"] == expected == resumed.requests
    assert resumed.resumed_sync is not None
    assert any("Resuming" in m for m in messages)
    assert_matches_truth(WarehouseSettings.from_environment(), truth)

    # After a complete sync, the next one refreshes everything again.
    sandbox.reset_stats()
    full = run_sync(build_definitions(), progress=lambda _: None)
    assert full.resumed_sync is None
    assert sandbox.stats()["requests_total"] == truth["minimal_requests"]["total"]
    assert_matches_truth(WarehouseSettings.from_environment(), truth)


def test_a_404_on_one_workspaces_environments_still_loads_the_other_organisation_tables(project):
    sandbox, proxy = project
    truth = sandbox.ground_truth()
    workspace = truth["tables"]["workspaces"]["rows"][1]["id"]
    proxy.failing = f"environments/ws/{workspace}"

    with pytest.raises(SyncFailed) as failed:
        run_sync(build_definitions(), progress=lambda _: None)
    report = failed.value.report
    assert [s.label for s in report.failed_scopes] == ["workspaces and environments"]
    assert str(failed.value).startswith("split_organisation_refresh")
    # Users, groups and change requests were loaded; without a workspace listing nothing
    # per workspace was attempted.
    assert_matches_truth(
        WarehouseSettings.from_environment(), truth, ("users", "groups", "change_requests")
    )
    assert report.runs and len(report.runs) == 1
    instance = DagsterInstance.get()
    for table in ("users", "groups", "change_requests"):
        assert instance.get_latest_materialization_event(AssetKey(["split", table])) is not None
    assert instance.get_latest_materialization_event(AssetKey(["split", "workspaces"])) is None

    proxy.failing = None
    sandbox.reset_stats()
    run_sync(build_definitions(), progress=lambda _: None)
    by_endpoint = truth["minimal_requests"]["by_endpoint"]
    skipped = by_endpoint["users"] + by_endpoint["groups"] + by_endpoint["change_requests"]
    assert sandbox.stats()["requests_total"] == truth["minimal_requests"]["total"] - skipped
    assert_matches_truth(WarehouseSettings.from_environment(), truth)


def _environment_job():  # module level: reconstructable for a re-execution
    return build_definitions().resolve_job_def("split_environment_refresh")


def test_re_execute_from_failure_fetches_only_the_failed_partition(project):
    from dagster import ReexecutionOptions, execute_job, reconstructable

    sandbox, proxy = project
    truth = sandbox.ground_truth()
    broken = truth["tables"]["environments"]["rows"][2]["id"]
    proxy.failing = broken
    with pytest.raises(SyncFailed):
        run_sync(build_definitions(), progress=lambda _: None)
    instance = DagsterInstance.get()
    (failed_run,) = [r for r in instance.get_runs() if r.job_name == "split_environment_refresh"]

    # What the UI's "Re-execute from failure" does (with the run's tags, its partition range
    # among them), once the scope answers again.
    proxy.failing = None
    sandbox.reset_stats()
    with execute_job(
        reconstructable(_environment_job),
        instance=instance,
        tags=dict(failed_run.tags),
        reexecution_options=ReexecutionOptions.from_failure(failed_run.run_id, instance),
    ) as result:
        assert result.success
    assert sandbox.stats()["requests_total"] == _environment_requests(truth, broken)
    assert_matches_truth(WarehouseSettings.from_environment(), truth)
    status = _status(instance, "segments_keys", environment_partitions)
    assert set(status.values()) == {"MATERIALIZED"}


def test_a_sync_with_nothing_new_leaves_the_history_as_it_was(tmp_path, monkeypatch):
    """After Split deleted an environment (and its flag definitions' versions were retired),
    the next sync with nothing new changes no row: no version is retired again, no deletion
    time moves. (The scope's SQL condition is joined to dlt's with AND; unparenthesised, its
    "or not a known environment" matched the retired versions too.)"""
    from analytics_assets.dagster_layer.sync import SyncOptions
    from analytics_assets_tests.reliability.harness import snapshot_tables

    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("SPLIT_", "ANALYTICS_")):
            monkeypatch.delenv(name)
    loads_only = SyncOptions(build_models=False)
    with SandboxProcess(size="tiny") as sandbox:
        for name, value in project_environment(tmp_path, sandbox).items():
            monkeypatch.setenv(name, value)
        before = {r["id"] for r in sandbox.ground_truth()["tables"]["environments"]["rows"]}
        run_sync(build_definitions(), loads_only, progress=lambda _: None)
        sandbox.control(generation=1)
        truth = sandbox.ground_truth()
        after = {r["id"] for r in truth["tables"]["environments"]["rows"]}
        assert before - after, "the sandbox's next generation deletes an environment"
        run_sync(build_definitions(), loads_only, progress=lambda _: None)
        duckdb_path = Path(os.environ["ANALYTICS_DUCKDB_PATH"])
        loaded = snapshot_tables(duckdb_path)
        run_sync(build_definitions(), loads_only, progress=lambda _: None)
        again = snapshot_tables(duckdb_path)
        changed = sorted(
            unit for unit in set(loaded) | set(again) if loaded.get(unit) != again.get(unit)
        )
        assert changed == []
        assert_matches_truth(WarehouseSettings.from_environment(), truth)
