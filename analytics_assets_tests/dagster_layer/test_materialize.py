"""The whole graph through Dagster gives exact tables; partitions refresh alone."""

from __future__ import annotations

import math
from collections import Counter

import duckdb
from dagster import AssetKey, DagsterEventType

from analytics_assets.dagster_layer.partitions import environment_partitions, workspace_partitions
from analytics_assets.split_source import TABLES
from analytics_assets_tests.support import assert_matches_truth, truth_partition_keys


def test_whole_graph_is_exact(synced_project):
    truth = synced_project.sandbox.ground_truth()
    assert_matches_truth(synced_project.warehouse, truth)
    report = synced_project.report
    assert set(report.tables) == set(TABLES)
    assert report.requests == truth["minimal_requests"]["total"]
    assert len(report.runs) == 3  # org, one workspace range, one environment range
    instance = synced_project.instance
    # Keys carry the name, so the UI's partition pickers find them by name.
    workspace_keys, environment_keys = truth_partition_keys(truth)
    assert set(instance.get_dynamic_partitions(workspace_partitions.name)) == set(
        workspace_keys.values()
    )
    assert set(instance.get_dynamic_partitions(environment_partitions.name)) == set(
        environment_keys.values()
    )
    # every partition of every partitioned asset has a materialization
    status = instance.get_materialized_partitions(AssetKey(["split", "segments_keys"]))
    assert status == set(instance.get_dynamic_partitions(environment_partitions.name))


def _pages(count: int, page_size: int) -> int:
    return max(1, math.ceil(count / page_size))


def _load_ids(path, table, column, value):
    with duckdb.connect(str(path), read_only=True) as con:
        return Counter(
            row[0]
            for row in con.execute(
                f"SELECT _dlt_load_id FROM split.{table} WHERE {column} <> ?", [value]
            ).fetchall()
        )


def test_one_workspace_and_one_environment_partition_refresh_alone(synced_project):
    project = synced_project
    truth = project.sandbox.ground_truth()
    rows = truth["tables"]
    workspace = Counter(r["workspace_id"] for r in rows["feature_flags"]["rows"]).most_common(1)[0][
        0
    ]
    duckdb_path = project.warehouse.duckdb_path
    others_before = _load_ids(duckdb_path, "feature_flags", "workspace_id", workspace)

    workspace_keys, environment_keys = truth_partition_keys(truth)
    project.sandbox.reset_stats()
    result = project.defs.resolve_job_def("split_workspace_refresh").execute_in_process(
        instance=project.instance, partition_key=workspace_keys[workspace]
    )
    assert result.success
    requests = {k: v["requests"] for k, v in project.sandbox.stats()["by_endpoint"].items()}

    def in_workspace(table):
        return sum(1 for r in rows[table]["rows"] if r["workspace_id"] == workspace)

    traffic_types = [
        r["id"] for r in rows["traffic_types"]["rows"] if r["workspace_id"] == workspace
    ]
    attributes = Counter(
        r["traffic_type_id"] for r in rows["attributes"]["rows"] if r["workspace_id"] == workspace
    )
    assert requests == {
        "traffic_types": 1,
        "rollout_statuses": 1,
        "flag_sets": _pages(in_workspace("flag_sets"), 200),
        "feature_flags": _pages(in_workspace("feature_flags"), 50),
        "segments": _pages(in_workspace("segments"), 50),
        # markers of 200 per traffic type; the sandbox's default forms are bare arrays for
        # rule-based and large segments, one request each
        "attributes": sum(_pages(attributes[t], 200) for t in traffic_types),
        "rule_based_segments": 1,
        "large_segments": 1,
    }
    assert _load_ids(duckdb_path, "feature_flags", "workspace_id", workspace) == others_before

    environment = next(r for r in rows["environments"]["rows"] if r["workspace_id"] == workspace)[
        "id"
    ]
    active = [r for r in rows["environment_segments"]["rows"] if r["environment_id"] == environment]
    keys = Counter(
        r["segment_name"]
        for r in rows["segments_keys"]["rows"]
        if r["environment_id"] == environment
    )
    project.sandbox.reset_stats()
    result = project.defs.resolve_job_def("split_environment_refresh").execute_in_process(
        instance=project.instance, partition_key=environment_keys[environment]
    )
    assert result.success
    requests = {k: v["requests"] for k, v in project.sandbox.stats()["by_endpoint"].items()}
    definitions = sum(
        1 for r in rows["feature_flag_definitions"]["rows"] if r["environment_id"] == environment
    )
    assert requests == {
        "feature_flag_definitions": _pages(definitions, 50),
        "environment_segments": _pages(len(active), 50),
        "segments_keys": sum(_pages(keys[s["name"]], 100) for s in active),
        "rule_based_segment_definitions": 1,
        "environment_large_segments": 1,
    }
    # The partition's materialization carries only its own partition.
    events = [
        e for e in result.all_events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
    ]
    assert {e.step_materialization_data.materialization.partition for e in events} == {
        environment_keys[environment]
    }
    assert_matches_truth(project.warehouse, truth)


def test_an_upgrade_from_id_keys_and_a_rename_lose_and_duplicate_nothing(synced_project):
    """An instance whose partitions are bare Split ids (a release before names were in keys),
    then a week in which an environment is renamed: the next sync replaces every key, loads
    each partition once, and the tables are exact."""
    from analytics_assets.dagster_layer.sync import SyncOptions, run_sync

    project = synced_project
    instance = project.instance
    before = project.sandbox.ground_truth()
    for partitions, table in (
        (workspace_partitions, "workspaces"),
        (environment_partitions, "environments"),
    ):
        for key in instance.get_dynamic_partitions(partitions.name):
            instance.delete_dynamic_partition(partitions.name, key)
        ids = [r["id"] for r in before["tables"][table]["rows"]]
        instance.add_dynamic_partitions(partitions.name, ids)

    project.sandbox.control(generation=1)
    after = project.sandbox.ground_truth()
    renamed_before, renamed_after = (
        truth_partition_keys(before)[1],
        truth_partition_keys(after)[1],
    )
    assert any(
        renamed_before[i] != renamed_after[i] for i in renamed_before.keys() & renamed_after.keys()
    )
    project.sandbox.reset_stats()
    report = run_sync(project.defs, SyncOptions(build_models=False), progress=lambda _: None)

    workspace_keys, environment_keys = truth_partition_keys(after)
    assert set(instance.get_dynamic_partitions(workspace_partitions.name)) == set(
        workspace_keys.values()
    )
    assert set(instance.get_dynamic_partitions(environment_partitions.name)) == set(
        environment_keys.values()
    )
    assert report.requests == after["minimal_requests"]["total"]
    assert_matches_truth(project.warehouse, after)
