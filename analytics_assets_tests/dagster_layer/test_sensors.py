"""The partition sensors keep partitions in step across a generation change."""

from __future__ import annotations

from dagster import (
    AddDynamicPartitionsRequest,
    DeleteDynamicPartitionsRequest,
    build_sensor_context,
)

from analytics_assets.dagster_layer.instance import get_instance
from analytics_assets.dagster_layer.partitions import (
    WORKSPACES_KEY,
    environment_partitions,
    workspace_partitions,
)
from analytics_assets.dagster_layer.sensors import PARTITION_RANGE_END, PARTITION_RANGE_START
from analytics_assets.definitions import build_definitions
from analytics_assets_tests.dagster_layer.conftest import project_environment
from analytics_assets_tests.support import truth_partition_keys


def _tick(defs, instance, name, cursor):
    sensor = defs.get_sensor_def(name)
    return sensor.evaluate_tick(
        build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    )


def _requested(result, kind):
    return {
        key
        for request in result.dynamic_partitions_requests or []
        if isinstance(request, kind)
        for key in request.partition_keys
    }


def _apply(instance, result, partitions_def):
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(partitions_def.name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(partitions_def.name, key)


def _keys(truth, table):
    """The partition keys of a listing's objects (each key holds its object's id)."""
    workspaces, environments = truth_partition_keys(truth)
    return set((workspaces if table == "workspaces" else environments).values())


def test_partition_sensors_follow_a_generation_change(project_dir, sandbox_factory, monkeypatch):
    sandbox = sandbox_factory(size="tiny")
    for name, value in project_environment(project_dir, sandbox).items():
        monkeypatch.setenv(name, value)
    defs = build_definitions()
    instance = get_instance()
    org_job = defs.resolve_job_def("split_organisation_refresh")

    assert org_job.execute_in_process(instance=instance).success
    first = sandbox.ground_truth(rows=True, tables=["workspaces", "environments"])

    result = _tick(defs, instance, "split_workspace_partitions", None)
    assert _requested(result, AddDynamicPartitionsRequest) == _keys(first, "workspaces")
    assert not _requested(result, DeleteDynamicPartitionsRequest)
    # all partitions are new and contiguous: one single-run backfill over the whole range
    assert len(result.run_requests) == 1
    tags = result.run_requests[0].tags
    assert {tags[PARTITION_RANGE_START], tags[PARTITION_RANGE_END]} <= _keys(first, "workspaces")
    latest = instance.fetch_materializations(WORKSPACES_KEY, limit=1).records[0]
    assert result.cursor == str(latest.storage_id)
    _apply(instance, result, workspace_partitions)
    workspace_cursor = result.cursor

    environments = _tick(defs, instance, "split_environment_partitions", None)
    assert _requested(environments, AddDynamicPartitionsRequest) == _keys(first, "environments")
    _apply(instance, environments, environment_partitions)
    environment_cursor = environments.cursor

    # Nothing new materialized: the sensor skips and keeps its cursor.
    again = _tick(defs, instance, "split_workspace_partitions", workspace_cursor)
    assert not again.run_requests and again.skip_message
    assert again.cursor == workspace_cursor

    sandbox.control(generation=1)
    assert org_job.execute_in_process(instance=instance).success
    second = sandbox.ground_truth(rows=True, tables=["workspaces", "environments"])

    result = _tick(defs, instance, "split_workspace_partitions", workspace_cursor)
    added = _keys(second, "workspaces") - _keys(first, "workspaces")
    deleted = _keys(first, "workspaces") - _keys(second, "workspaces")
    assert added and deleted  # the generation adds one workspace and deletes another
    assert _requested(result, AddDynamicPartitionsRequest) == added
    assert _requested(result, DeleteDynamicPartitionsRequest) == deleted
    requested = {r.tags[PARTITION_RANGE_START] for r in result.run_requests} | {
        r.tags[PARTITION_RANGE_END] for r in result.run_requests
    }
    assert added <= requested
    assert result.cursor != workspace_cursor

    environments = _tick(defs, instance, "split_environment_partitions", environment_cursor)
    assert _requested(environments, AddDynamicPartitionsRequest) == (
        _keys(second, "environments") - _keys(first, "environments")
    )
    assert _requested(environments, DeleteDynamicPartitionsRequest) == (
        _keys(first, "environments") - _keys(second, "environments")
    )
    # A renamed environment (same id, new name) moves to a key with its new name, and is loaded.
    before, after = truth_partition_keys(first)[1], truth_partition_keys(second)[1]
    renamed = {i for i in before.keys() & after.keys() if before[i] != after[i]}
    assert renamed  # every generation renames one
    assert {after[i] for i in renamed} <= _requested(environments, AddDynamicPartitionsRequest)
    assert {before[i] for i in renamed} <= _requested(environments, DeleteDynamicPartitionsRequest)
    _apply(instance, environments, environment_partitions)
    order = list(instance.get_dynamic_partitions(environment_partitions.name))
    ranges = [
        (order.index(r.tags[PARTITION_RANGE_START]), order.index(r.tags[PARTITION_RANGE_END]))
        for r in environments.run_requests
    ]
    for key in (after[i] for i in renamed):
        assert any(start <= order.index(key) <= end for start, end in ranges), key
